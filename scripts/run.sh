#!/usr/bin/env bash
# The main job on a fresh machine: validate the examples and print them with their
# defaults filled in. (The standalone receiver replaces this once it exists.)
set -euo pipefail
source "$(dirname "$0")/venv.sh"
hookline validate examples/
hookline validate --print examples/
