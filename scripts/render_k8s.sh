#!/usr/bin/env bash
# Render the Helm chart with its default values into k8s/raykd.yaml (release name "raykd"), so the plain
# manifests and the chart never drift apart; tests/k8s checks that they are in sync.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python scripts/install_k8s_tools.py >/dev/null
{
  echo "# Rendered from helm/raykd with default values (and the interactive RayCluster on): bash scripts/render_k8s.sh. Do not edit by hand."
  .tools/helm template raykd helm/raykd --namespace raykd --set cluster.enabled=true
} > k8s/raykd.yaml
