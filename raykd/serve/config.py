"""The endpoint's config (`raykd serve`, the RayService's application arguments)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from raykd.config import (
    Bool,
    NonNegativeInt,
    NonNegativeNumber,
    PositiveInt,
    PositiveNumber,
    ReviewConfig,
    Str,
    config,
    rule,
    rules,
)


@config
class AutoscalingConfig:
    min_replicas: NonNegativeInt = 1
    max_replicas: PositiveInt = 2
    target_ongoing_requests: PositiveNumber = 8.0


@config
class ServeConfig:
    """The scoring endpoint. `model` is a model folder, `runs:/ID/model` or `models:/NAME@ALIAS`.

    Admission is sized to batching: a replica accepts `max_ongoing_requests` at once (enough for a batch of
    `max_batch_size` requests to fill), `max_queued_requests` more may wait for a slot, and a replica refuses a
    request whose expected wait behind the work already accepted exceeds `max_queue_wait_s`. Refusals are an
    immediate 503 with `Retry-After`, never a time-out; `request_timeout_s` is only a safety net.
    `ingress: haproxy` is Ray Serve's high-throughput mode (HAProxy in front of replicas that serve HTTP
    themselves, see raykd.runtime); `proxy` is Ray's Python proxy. It takes effect when raykd starts the Ray
    cluster; a cluster started elsewhere runs the mode its environment sets.
    """

    model: Str = "models:/asap1-student@champion"
    tracking_uri: Str | None = None
    app_name: Str = "raykd"
    route_prefix: Str = "/"
    host: Str = "127.0.0.1"  # children's data: loopback only unless configured otherwise
    port: Annotated[int, Field(strict=True, ge=1, le=65535)] = 8000
    num_replicas: PositiveInt = 1
    autoscaling: AutoscalingConfig | None = None
    num_cpus_per_replica: PositiveNumber = 0.5
    ingress: Literal["haproxy", "proxy"] = "haproxy"
    # Where Serve runs its HTTP ingress (Serve's `proxy_location`): every node, as on Kubernetes where each pod has
    # its own address; HeadOnly where nodes share one host (a local multi-node cluster) and so one port.
    proxy_location: Literal["EveryNode", "HeadOnly"] = "EveryNode"
    max_batch_size: PositiveInt = 64  # requests whose responses share one model call
    batch_wait_timeout_s: NonNegativeNumber = 0.002
    max_ongoing_requests: PositiveInt = 256  # per replica; below max_batch_size a batch could never fill
    max_queued_requests: NonNegativeInt = 512  # waiting for a replica slot; more get 503 at once
    access_log: Bool = True  # method, path, status and latency per request (never bodies)
    max_queue_wait_s: PositiveNumber = 5.0  # a replica refuses (503) what it could not start within this long
    retry_after_s: NonNegativeNumber = 1.0  # the Retry-After header of a 503
    request_timeout_s: PositiveNumber = 60.0  # the proxy answers 408 after this; admission keeps requests far below
    max_responses: PositiveInt = 256
    max_text_chars: PositiveInt = 5000
    # Bodies are refused (413) past these sizes before they are read (raykd.serve.guard): JSON routes
    # (/v1/score, /v1/simulate) and the scoring page's file upload (/v1/score/file).
    max_request_bytes: PositiveInt = 8_000_000
    max_file_bytes: PositiveInt = 20_000_000
    max_file_responses: PositiveInt = 50_000
    auth_token_env: Str = "RAYKD_SERVE_TOKEN"  # the bearer token's environment variable (a K8s Secret)
    allow_public_without_auth: Bool = False
    poll_interval_s: NonNegativeNumber = 30.0  # how often a replica checks the alias for a new champion (0: never)
    max_backoff_s: NonNegativeNumber = 600.0  # a champion that failed to load is retried after 1, 2, 4 ... polls
    model_cache_dir: Str | None = None  # where replicas download registered models (default: <tmp>/raykd-models)
    # Which responses are marked needs_review: null keeps the policy the model was saved with; `rate` or
    # `target_agreement` re-chooses the cut from the model's calibration evidence (raykd.confidence)
    review: ReviewConfig | None = None
    simulator: Str | None = None  # a knowledge-tracing champion (folder or MLflow URI): /v1/simulate, /v1/skills
    max_history: PositiveInt = 1000  # attempts in one /v1/simulate history
    max_next_skills: PositiveInt = 200

    @rules
    def _rules(self) -> None:
        if self.max_ongoing_requests < self.max_batch_size:
            raise rule("max_ongoing_requests", f"{self.max_ongoing_requests} is below max_batch_size "
                                               f"{self.max_batch_size}: a batch could never fill, and throughput "
                                               "would fall as load rises")
        if self.request_timeout_s <= self.max_queue_wait_s:
            raise rule("request_timeout_s", f"must exceed max_queue_wait_s ({self.max_queue_wait_s}): overload is "
                                            "answered by 503, not by a time-out")
        if self.max_backoff_s < self.poll_interval_s:
            raise rule("max_backoff_s", f"must be at least poll_interval_s ({self.poll_interval_s})")
        if self.simulator and ":/" not in self.simulator and not (Path(self.simulator) / "model.json").is_file():
            raise rule("simulator", f"{self.simulator}: not a simulator folder (model.json missing); give a "
                                    "kt-distill champion folder or models:/NAME@ALIAS")
