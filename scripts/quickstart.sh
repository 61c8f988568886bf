#!/usr/bin/env bash
# One command on a fresh machine: install, then run the whole raykd pipeline end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/raykd quickstart "$@"
