#!/usr/bin/env bash
# One command on a fresh machine: install, lint, then run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --zoo  # the tests prepare every zoo backbone
.venv/bin/python scripts/install_k8s_tools.py  # static helm + kubectl for the chart checks
bash scripts/install_system_tools.sh  # chromium + chromedriver (scoring page test), wrk (load benchmark)
.venv/bin/ruff check raykd jobs tests bench
exec .venv/bin/python -m pytest "$@"
