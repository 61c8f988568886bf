#!/usr/bin/env bash
# Create (or reuse) the project virtualenv in .venv with raykd and its pinned stack installed.
# Re-runs are cheap: a stamp keyed on pyproject.toml + constraints.txt skips pip when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${RAYKD_VENV:-.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.raykd-stamp"
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$VENV/bin/pip" install -q --upgrade pip
  # torch first, from the local CPU wheel; the constraints file keeps it there.
  "$VENV/bin/pip" install -q torch==2.13.0
  "$VENV/bin/pip" install -q -c constraints.txt -e ".[dev]"
  echo "$want" > "$stamp"
fi
