#!/usr/bin/env bash
# Debian packages the tests and benchmarks use, installed when missing: chromium + chromium-driver (the scoring
# page's browser test), wrk (bench/serve_load.py's HTTP load generator) and postgresql (the MLflow server's backend
# store in tests/bench/test_services.py). Needs root (or sudo) and the Debian
# mirror; without them it says what is missing and carries on (tests that need a tool then fail in CI, skip
# elsewhere).
set -uo pipefail
want=()
command -v chromium >/dev/null 2>&1 || want+=(chromium)
command -v chromedriver >/dev/null 2>&1 || want+=(chromium-driver)
command -v wrk >/dev/null 2>&1 || want+=(wrk)
{ command -v pg_ctl || ls /usr/lib/postgresql/*/bin/pg_ctl; } >/dev/null 2>&1 || want+=(postgresql)
[ ${#want[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo -n"
export DEBIAN_FRONTEND=noninteractive
if ! { $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends "${want[@]}"; } >/dev/null 2>&1; then
  echo "install_system_tools: could not install ${want[*]} (apt-get install ${want[*]})" >&2
fi
exit 0
