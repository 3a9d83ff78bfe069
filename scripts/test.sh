#!/usr/bin/env bash
# The whole test suite on a fresh machine: lint, types, CRD drift, then pytest
# (slow-marked soak and crash runs included). Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "$0")/venv.sh"
source scripts/postgres.sh  # a throwaway PostgreSQL when none answers (never skip)
source scripts/test-data.sh  # the pinned GitHub example payloads, into .cache/npm/
echo "== ruff";   ruff check . && ruff format --check .
echo "== mypy";   mypy hookline tests
echo "== crds";   hookline crds --check
echo "== pytest"; pytest "$@"
