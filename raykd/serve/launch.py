"""Starting the endpoint: the same Serve application for `raykd serve` and the RayService (`app_builder`).

Both run the token rule of raykd.serve.auth before anything is deployed: an endpoint bound beyond loopback
without a token refuses to start, and a token that is set but blank or short is an error, not "no token".
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from ray import serve

from raykd.config import from_dict
from raykd.serve.auth import check_exposure, serve_token, token_digest
from raykd.serve.config import ServeConfig


def deployment_options(cfg: ServeConfig) -> dict[str, Any]:
    """Replicas or autoscaling, CPU per replica, and admission: the same for `raykd serve` and the RayService."""
    from ray.serve.config import BackpressureConfig
    from ray.serve.schema import LoggingConfig

    options: dict[str, Any] = {
        "ray_actor_options": {"num_cpus": cfg.num_cpus_per_replica},
        "max_ongoing_requests": cfg.max_ongoing_requests,
        "max_queued_requests": cfg.max_queued_requests,
        "backpressure_config": BackpressureConfig(status_code=503, retry_after_s=cfg.retry_after_s),
        "logging_config": LoggingConfig(enable_access_log=cfg.access_log),
    }
    if cfg.autoscaling is not None:
        options["autoscaling_config"] = asdict(cfg.autoscaling)
    else:
        options["num_replicas"] = cfg.num_replicas
    return options


def build_app(cfg: ServeConfig) -> Any:
    """The Serve application for `cfg`, after the token rule (ConfigError when it is broken)."""
    from raykd.serve.app import ScoringDeployment
    from raykd.tracking import default_tracking_uri

    token = serve_token(cfg)
    check_exposure(cfg, token)
    if cfg.tracking_uri is None and cfg.model.startswith(("models:/", "runs:/")):
        cfg.tracking_uri = default_tracking_uri()
    return ScoringDeployment.options(**deployment_options(cfg)).bind(asdict(cfg),
                                                                     token_digest(token) if token else None)


def app_builder(args: dict[str, Any]) -> Any:
    """`serve run raykd.serve.launch:app_builder model=...`, and the RayService `import_path`."""
    cfg = from_dict(ServeConfig, dict(args), "serve args")
    return build_app(cfg)


def run_serve(cfg: ServeConfig, blocking: bool = True) -> str:
    """Start Serve's HTTP proxy on cfg.host:cfg.port and deploy the scorer; returns the base URL."""
    from raykd.runtime import ensure_ray

    application = build_app(cfg)  # the token rule before any cluster or port is opened
    ensure_ray(high_throughput_serve=cfg.ingress == "haproxy")
    serve.start(proxy_location=cfg.proxy_location,
                http_options={"host": cfg.host, "port": cfg.port, "request_timeout_s": cfg.request_timeout_s})
    serve.run(application, name=cfg.app_name, route_prefix=cfg.route_prefix)
    url = f"http://{cfg.host}:{cfg.port}{cfg.route_prefix.rstrip('/')}"
    print(f"[serve] scoring {cfg.model} at {url}/v1/score (page {url}/, docs {url}/docs)", flush=True)
    if blocking:
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            serve.shutdown()
    return url
