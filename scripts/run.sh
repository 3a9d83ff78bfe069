#!/usr/bin/env bash
# The main job on a fresh machine: the standalone receiver serving the examples.
# Ingest on http://127.0.0.1:8080/hooks/<path>, admin API on http://127.0.0.1:8081/api/v1/
# (override with HOOKLINE_PORT / HOOKLINE_ADMIN_PORT); the delivery log is a SQLite file
# in .hookline/. Stop with Ctrl-C; SIGHUP reloads the manifests.
set -euo pipefail
source "$(dirname "$0")/venv.sh"
mkdir -p .hookline
hookline validate examples/
exec hookline receiver \
  --manifests examples/ \
  --store "sqlite:///.hookline/receiver.db" \
  --port "${HOOKLINE_PORT:-8080}" \
  --admin-port "${HOOKLINE_ADMIN_PORT:-8081}" "$@"
