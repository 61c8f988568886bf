"""The scoring endpoint: a Ray Serve deployment with a FastAPI ingress.

    GET  /               the scoring page for teachers (static HTML and a little JavaScript)
    POST /v1/score       {"responses": [{"task", "text", "id"?}, ...]} or one {"task", "text", "id"?}
    POST /v1/score/file  a CSV/TSV/JSONL file as the body -> the scored CSV that `raykd predict` writes
    GET  /v1/tasks       tasks, label names and score ranges the model serves
    GET  /healthz        liveness and the model being served
    GET  /openapi.json, /docs

One request's path: the proxy routes it to a replica with a free slot (`max_ongoing_requests`; beyond the
replicas' slots the proxy queues `max_queued_requests`, then answers 503). The replica reads the body once,
validates it with pydantic, and refuses at once (503 + Retry-After) a request it could not start within
`max_queue_wait_s` at the rate it is scoring now. Accepted requests wait in `@serve.batch`, which packs the
responses of concurrent requests into one model call of up to `max_batch_size` responses. A student runs
on the replica's event loop (a thread hop would cost more than the model); a teacher runs in a thread.
`Server-Timing` gives each request's time in the batch queue and in the model, and the app's total.

A replica serving `models:/NAME@ALIAS` checks the alias every `poll_interval_s` and swaps in a new champion
once it has loaded, without dropping requests. Response texts are children's data: nothing here logs or
stores them, and error messages never echo them.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures, which Ray Serve rewrites for
# class-based views, and string annotations would no longer resolve there.
import asyncio
import hashlib
import io
import logging
import math
import os
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request, Security
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import from_json
from ray import serve
from starlette.requests import ClientDisconnect

from raykd.config import ServeConfig, from_dict

logger = logging.getLogger("raykd.serve")
API_VERSION = "1"
STATIC = Path(__file__).resolve().parent / "static"
# A student scores this many responses in a few milliseconds on the event loop; a larger batch (or any teacher
# batch) runs in a thread, so the loop keeps answering, and HAProxy's health checks keep passing.
INLINE_RESPONSES = 256


class ResponseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: str = Field(min_length=1, max_length=200, description="rubric task, as listed by GET /v1/tasks")
    text: str = Field(description="the student's response")
    id: str | None = Field(default=None, max_length=200, description="your id for the response, echoed back")
    question: str | None = Field(default=None, description="the question asked (question-aware models read it)")
    reference: str | None = Field(default=None, description="reference answer(s) (question-aware models)")


class Attempt(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    skill: int = Field(description="skill id, as listed by GET /v1/skills")
    correct: int = Field(ge=0, le=1, description="1 if the learner answered correctly, else 0")


class SimulateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    history: list[Attempt] = Field(default_factory=list, description="the learner's attempts so far, oldest first")
    next_skills: list[int] = Field(min_length=1, description="skills of the next questions")
    sample: bool = Field(default=False, description="answer the next questions in order, each answer drawn "
                                                    "and joining the history (else: each given the history)")
    seed: int | None = Field(default=None, description="seed of the drawn answers")


class SimulateResponse(BaseModel):
    simulator: str
    probabilities: list[float]
    answers: list[int] | None = None


class SkillInfo(BaseModel):
    id: int
    name: str | None = None


class SkillsResponse(BaseModel):
    simulator: str
    skills: list[SkillInfo]
    max_history: int


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    responses: list[ResponseIn] = Field(min_length=1)


class ModelInfo(BaseModel):
    name: str
    version: str
    kind: str
    uri: str


class ScoredResponse(BaseModel):
    id: str | None
    task: str
    prediction: str | list[str] = Field(description="the score/category, or the rubric labels that apply")
    probabilities: dict[str, float]


class ScoreResponse(BaseModel):
    model: ModelInfo
    results: list[ScoredResponse]


class TaskInfo(BaseModel):
    name: str
    kind: str
    labels: list[str]
    ordinal: bool
    score_range: list[int] | None = None


class TasksResponse(BaseModel):
    model: ModelInfo
    tasks: list[TaskInfo]


class Health(BaseModel):
    status: str
    model: ModelInfo


app = FastAPI(title="raykd scoring API", version=API_VERSION,
              description="Rubric scores for student responses from a distilled raykd model.")
bearer = HTTPBearer(auto_error=False, description="the token in $RAYKD_SERVE_TOKEN (when the endpoint has one)")


def _openapi() -> dict[str, Any]:
    """FastAPI's schema plus the request bodies the score route reads itself (so /docs and fuzzers see them)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (ScoreRequest, ResponseIn):
        body = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(body.pop("$defs", {}))
        components[model.__name__] = body
    app.openapi_schema = schema
    return schema


app.openapi = _openapi  # type: ignore[method-assign]
SCORE_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"anyOf": [
    {"$ref": "#/components/schemas/ScoreRequest"}, {"$ref": "#/components/schemas/ResponseIn"}]}}}}}
FILE_BODY = {"requestBody": {"required": True, "content": {
    media: {"schema": {"type": "string", "format": "binary"}}
    for media in ("text/csv", "text/tab-separated-values", "application/x-ndjson")}}}


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def require_token(credentials: HTTPAuthorizationCredentials | None = Security(bearer)) -> None:  # noqa: B008
    """401 unless the request carries the replica's bearer token. Only the token's sha256 travels in the
    deployment arguments; the token stays in the deploying process's environment (a Kubernetes Secret)."""
    expected = serve.get_replica_context().servable_object.token_sha256
    if not expected:
        return
    given = token_digest(credentials.credentials) if credentials is not None else ""
    if not secrets.compare_digest(given, expected):
        raise HTTPException(status_code=401, detail="missing or wrong bearer token",
                            headers={"WWW-Authenticate": "Bearer"})


def validation_detail(error: ValidationError, prefix: tuple[Any, ...] = ("body",)) -> list[dict[str, Any]]:
    """pydantic errors without the offending input: a response text must not travel into logs or traces."""
    return [{"loc": [*prefix, *e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in error.errors(include_input=False, include_url=False, include_context=False)]


def parse_score_body(body: bytes) -> list[ResponseIn]:
    """The responses of a score request, from its raw body: 400 for non-UTF-8, 422 for anything invalid."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(status_code=400, detail="request body is not valid UTF-8") from None
    try:
        obj = from_json(text)
    except ValueError as e:
        raise HTTPException(status_code=422, detail=[{"loc": ["body"], "msg": f"JSON decode error: {e}",
                                                      "type": "json_invalid"}]) from None
    try:
        if isinstance(obj, dict) and "responses" in obj:
            return ScoreRequest.model_validate(obj).responses
        return [ResponseIn.model_validate(obj)]
    except ValidationError as e:
        raise HTTPException(status_code=422, detail=validation_detail(e)) from None


def model_info_for(uri: str, tracking_uri: str | None, path: str) -> tuple[ModelInfo, str | None]:
    """Name/version of the served model; for a registry alias also the alias to watch."""
    from raykd.registry import parse_model_ref

    if uri.startswith("models:/"):
        from mlflow.tracking import MlflowClient

        name, alias, version = parse_model_ref(uri)
        client = MlflowClient(tracking_uri=tracking_uri)
        mv = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, version)
        return ModelInfo(name=name, version=str(mv.version), kind="", uri=uri), alias
    digest = hashlib.sha256(Path(path, "raykd_model.json").read_bytes()).hexdigest()[:12]
    return ModelInfo(name=os.path.basename(os.path.normpath(uri)) or uri, version=digest, kind="", uri=uri), None


@dataclass(frozen=True)
class Served:
    """The model a replica serves now. Swapped as one object: a request sees the old model or the new one."""

    scorer: Any
    info: ModelInfo
    info_json: dict[str, Any]
    alias: str | None


@dataclass(frozen=True)
class Job:
    """One request's responses waiting for a model call."""

    served: Served
    tasks: list[str]
    texts: list[str]
    questions: list[str | None]
    references: list[str | None]


class Admission:
    """Refuses work a replica could not start within `max_wait_s`: the responses already accepted, divided by
    the rate the model has been scoring them (an average over recent model calls), is the expected wait."""

    def __init__(self, max_wait_s: float, retry_after_s: float):
        self.max_wait_s, self.retry_after_s = max_wait_s, retry_after_s
        self.pending = 0  # responses accepted and not yet answered
        self.rate = math.inf  # responses per second of model time; unknown until the first call

    def wait_s(self, n: int) -> float:
        return (self.pending + n) / self.rate

    def admit(self, n: int) -> None:
        """Accept `n` responses, or raise 503 (n = 0: could anything at all be accepted now?)."""
        wait = self.wait_s(n)
        if self.pending and wait > self.max_wait_s:
            retry = max(self.retry_after_s, wait - self.max_wait_s)
            raise HTTPException(status_code=503, detail=f"busy: about {wait:.1f}s of scoring is queued here "
                                                        f"(limit {self.max_wait_s:g}s); retry later",
                                headers={"Retry-After": str(math.ceil(retry))})
        self.pending += n

    def done(self, n: int) -> None:
        self.pending -= n

    def observe(self, responses: int, seconds: float) -> None:
        rate = responses / max(seconds, 1e-6)
        self.rate = rate if math.isinf(self.rate) else 0.8 * self.rate + 0.2 * rate


@serve.deployment(name="scorer")
@serve.ingress(app)
class ScoringDeployment:
    def __init__(self, config: dict[str, Any], token_sha256: str | None = None):
        self.cfg = from_dict(ServeConfig, config, "serve")
        self.token_sha256 = token_sha256
        self.admission = Admission(self.cfg.max_queue_wait_s, self.cfg.retry_after_s)
        self._files = asyncio.Semaphore(1)  # one file at a time per replica: files can be large
        self._load(self.cfg.model)
        self.simulator = None
        if self.cfg.simulator:
            from raykd.kt.simulator import Simulator

            self.simulator = Simulator.load(self.cfg.simulator, self.cfg.tracking_uri)
        self._batch.set_max_batch_size(self.cfg.max_batch_size)
        self._batch.set_batch_wait_timeout_s(self.cfg.batch_wait_timeout_s)
        if self.served.alias and self.cfg.poll_interval_s > 0:
            threading.Thread(target=self._watch, daemon=True, name="raykd-champion-watch").start()

    # ---------------------------------------------------------------------------------- model lifecycle
    def _load(self, uri: str) -> None:
        from raykd.scoring import load_scorer, resolve_model

        if uri.startswith("models:/"):
            info, alias = model_info_for(uri, self.cfg.tracking_uri, "")
            # Pin the resolved version so the files and the reported version agree.
            path = str(resolve_model(f"models:/{info.name}/{info.version}", self.cfg.tracking_uri))
        else:
            path = str(resolve_model(uri, self.cfg.tracking_uri))
            info, alias = model_info_for(uri, self.cfg.tracking_uri, path)
        scorer = load_scorer(path)
        info.kind = scorer.kind
        self.served = Served(scorer, info, info.model_dump(), alias)
        logger.info("serving %s version %s (%s)", info.name, info.version, info.kind)

    def _watch(self) -> None:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.cfg.tracking_uri)
        while True:
            time.sleep(self.cfg.poll_interval_s)
            current = self.served
            try:
                latest = client.get_model_version_by_alias(current.info.name, current.alias).version
                if str(latest) != current.info.version:
                    logger.info("new champion: %s version %s -> %s", current.info.name, current.info.version, latest)
                    self._load(self.cfg.model)
            except Exception as e:  # the registry may be briefly unreachable; keep serving the current model
                logger.warning("champion check failed: %s", e.__class__.__name__)

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Serve `user_config` updates (e.g. a RayService spec change) switch models in place."""
        if user_config.get("model") and user_config["model"] != self.cfg.model:
            self.cfg.model = user_config["model"]
            self._load(self.cfg.model)

    # Batches count requests, not responses: with a size function, Ray's batch queue sends the request that
    # does not fit to the back of the queue, where it can be passed over again and again under load.
    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.002)
    async def _batch(self, jobs: list[Job]) -> list[tuple[list[np.ndarray], float, float]]:
        """Score the responses of several requests in one model call per served model (normally one)."""
        start = time.perf_counter()
        out: list[Any] = [None] * len(jobs)
        for served in {id(j.served): j.served for j in jobs}.values():
            mine = [i for i, j in enumerate(jobs) if j.served is served]
            tasks = [t for i in mine for t in jobs[i].tasks]
            texts = [x for i in mine for x in jobs[i].texts]
            questions = [x for i in mine for x in jobs[i].questions]
            references = [x for i in mine for x in jobs[i].references]
            scorer = served.scorer
            t0 = time.perf_counter()
            if scorer.kind == "student" and len(texts) <= INLINE_RESPONSES:
                # milliseconds: a thread hop would cost more
                probs = scorer.predict_proba(texts, tasks, questions, references)
            else:  # long enough to stall the event loop (and HAProxy's health checks): run beside it
                probs = await asyncio.to_thread(scorer.predict_proba, texts, tasks, questions, references,
                                                64 if scorer.kind == "student" else 32)
            seconds = time.perf_counter() - t0
            self.admission.observe(len(texts), seconds)
            at = 0
            for i in mine:
                n = len(jobs[i].texts)
                out[i] = (probs[at:at + n], seconds, start)
                at += n
        return out

    # ------------------------------------------------------------------------------------------ routes
    @app.post("/v1/score", response_model=ScoreResponse, dependencies=[Security(require_token)],
              openapi_extra=SCORE_BODY,
              responses={400: {"description": "body is not UTF-8"}, 401: {"description": "bad token"},
                         413: {"description": "too many responses"}, 422: {"description": "invalid request"},
                         503: {"description": "busy: retry after the Retry-After header's seconds"}})
    async def score(self, request: Request) -> Response:
        from raykd.scoring import predictions

        t_in = time.perf_counter()
        self.admission.admit(0)  # already full: refuse before reading and parsing the body (refusals stay cheap)
        try:
            body = await request.body()
        except ClientDisconnect:  # the client gave up: nobody is left to answer
            return Response(status_code=499)
        items = parse_score_body(body)
        if len(items) > self.cfg.max_responses:
            raise HTTPException(status_code=413, detail=f"{len(items)} responses in one request; "
                                                        f"at most {self.cfg.max_responses}")
        served = self.served
        known = served.scorer.layout.names
        for i, item in enumerate(items):
            if item.task not in known:
                raise HTTPException(status_code=422, detail=f"responses[{i}]: unknown task {item.task!r}; "
                                                            f"this model serves {known}")
            if not item.text.strip():
                raise HTTPException(status_code=422, detail=f"responses[{i}]: empty text")
            for field_name in ("text", "question", "reference"):
                value = getattr(item, field_name) or ""
                if len(value) > self.cfg.max_text_chars:
                    raise HTTPException(status_code=422, detail=f"responses[{i}]: {field_name} has {len(value)} "
                                                                f"characters; at most {self.cfg.max_text_chars}")
        tasks = [item.task for item in items]
        self.admission.admit(len(items))
        try:
            probs, model_s, batch_start = await self._batch(Job(served, tasks, [item.text for item in items],
                                                                [item.question for item in items],
                                                                [item.reference for item in items]))
        finally:
            self.admission.done(len(items))
        layout = served.scorer.layout
        results = [{"id": item.id, "task": item.task, "prediction": pred,
                    "probabilities": dict(zip(layout.spec(item.task).labels, p.tolist(), strict=True))}
                   for item, p, pred in zip(items, probs, predictions(served.scorer, tasks, probs), strict=True)]
        queued_ms = (batch_start - t_in) * 1000
        timing = (f"queue;dur={queued_ms:.2f}, model;dur={model_s * 1000:.2f}, "
                  f"app;dur={(time.perf_counter() - t_in) * 1000:.2f}")
        return JSONResponse({"model": served.info_json, "results": results}, headers={"Server-Timing": timing})

    @app.post("/v1/score/file", dependencies=[Security(require_token)], openapi_extra=FILE_BODY,
              response_class=Response,
              responses={200: {"content": {"text/csv": {}}, "description": "the scored file, as `raykd predict` "
                                                                            "writes it"},
                         401: {"description": "bad token"}, 413: {"description": "file too large"},
                         422: {"description": "invalid file"}, 503: {"description": "busy"}})
    async def score_file(self, request: Request, name: str = "responses.csv") -> Response:
        """Score a whole file (the scoring page's upload). The file stays in memory and is never written."""
        from raykd.errors import DataError
        from raykd.predict import read_for_scoring, score_dataset

        try:
            body = await request.body()
        except ClientDisconnect:
            return Response(status_code=499)
        if len(body) > self.cfg.max_file_bytes:
            raise HTTPException(status_code=413, detail=f"the file has {len(body):,} bytes; at most "
                                                        f"{self.cfg.max_file_bytes:,} here (use raykd predict)")
        if self._files.locked():
            raise HTTPException(status_code=503, detail="busy scoring another file; retry later",
                                headers={"Retry-After": str(math.ceil(self.cfg.retry_after_s))})
        served = self.served
        filename = Path(name).name or "responses.csv"
        async with self._files:
            try:
                ds = await asyncio.to_thread(read_for_scoring, filename, served.scorer.layout, False, body)
                if len(ds) > self.cfg.max_file_responses:
                    raise HTTPException(status_code=413, detail=f"{filename}: {len(ds):,} responses; at most "
                                                                f"{self.cfg.max_file_responses:,} here")
                scored, _ = await asyncio.to_thread(score_dataset, served.scorer, ds)
            except DataError as e:
                raise HTTPException(status_code=422, detail=str(e)) from None
        out = io.StringIO()
        scored.to_csv(out, index=False)
        stem = Path(filename).stem or "responses"
        logger.info("scored a file of %d response(s)", len(scored))  # counts only, never texts
        return Response(out.getvalue(), media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{stem}.scored.csv"'})

    @app.get("/v1/tasks", response_model=TasksResponse, dependencies=[Security(require_token)],
             responses={401: {"description": "bad token"}})
    async def tasks(self) -> TasksResponse:
        served = self.served
        out = []
        for t in served.scorer.layout.tasks:
            numeric = t.ordinal and all(lab.lstrip("-").isdigit() for lab in t.labels)
            out.append(TaskInfo(name=t.name, kind=t.kind, labels=list(t.labels), ordinal=t.ordinal,
                                score_range=[int(t.labels[0]), int(t.labels[-1])] if numeric else None))
        return TasksResponse(model=served.info, tasks=out)

    def _simulator(self) -> Any:
        if self.simulator is None:
            raise HTTPException(status_code=404, detail="no simulator is served here (serve config: simulator)")
        return self.simulator

    @app.post("/v1/simulate", response_model=SimulateResponse, dependencies=[Security(require_token)],
              responses={401: {"description": "bad token"}, 404: {"description": "no simulator served"},
                         422: {"description": "invalid request: unknown skill, history too long, wrong types"},
                         503: {"description": "busy: retry after the Retry-After header's seconds"}})
    async def simulate(self, request: SimulateRequest) -> SimulateResponse:
        from raykd.kt.simulator import UnknownSkill

        sim = self._simulator()
        self.admission.admit(0)
        for name, items, limit in (("history", request.history, self.cfg.max_history),
                                   ("next_skills", request.next_skills, self.cfg.max_next_skills)):
            if len(items) > limit:
                raise HTTPException(status_code=422, detail=f"{name} has {len(items)} items; at most {limit}")
        try:
            out = await asyncio.to_thread(sim.predict, [(a.skill, a.correct) for a in request.history],
                                          request.next_skills, request.sample, request.seed)
        except UnknownSkill as e:
            raise HTTPException(status_code=422, detail=f"{e.where}: unknown skill {e.skill}; GET /v1/skills "
                                                        "lists the simulator's skills") from None
        return SimulateResponse(simulator=self.cfg.simulator or "", probabilities=out.probabilities,
                                answers=out.answers)

    @app.get("/v1/skills", response_model=SkillsResponse, dependencies=[Security(require_token)],
             responses={401: {"description": "bad token"}, 404: {"description": "no simulator served"}})
    async def skills(self) -> SkillsResponse:
        sim = self._simulator()
        return SkillsResponse(simulator=self.cfg.simulator or "", max_history=self.cfg.max_history,
                              skills=[SkillInfo(id=s, name=sim.names.get(s)) for s in sim.skill_ids])

    @app.get("/healthz", response_model=Health)
    async def healthz(self) -> Health:
        return Health(status="ok", model=self.served.info)

    @app.get("/", include_in_schema=False)
    async def page(self) -> FileResponse:
        """The scoring page: one static file; the token and the texts stay in the browser tab."""
        return FileResponse(STATIC / "index.html", media_type="text/html")


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
    """The Serve application for `cfg`."""
    from raykd.tracking import default_tracking_uri

    if cfg.tracking_uri is None and cfg.model.startswith(("models:/", "runs:/")):
        cfg.tracking_uri = default_tracking_uri()
    token = os.environ.get(cfg.auth_token_env)
    return ScoringDeployment.options(**deployment_options(cfg)).bind(asdict(cfg),
                                                                     token_digest(token) if token else None)


def app_builder(args: dict[str, Any]) -> Any:
    """`serve run raykd.serve.app:app_builder model=...`, and the RayService `import_path`."""
    cfg = from_dict(ServeConfig, dict(args), "serve args")
    cfg.validate("serve args")
    return build_app(cfg)


def check_exposure(cfg: ServeConfig) -> None:
    """Without a token the endpoint stays on loopback unless the config explicitly allows otherwise."""
    from raykd.errors import ConfigError

    loopback = cfg.host in ("127.0.0.1", "localhost", "::1")
    if not loopback and not os.environ.get(cfg.auth_token_env) and not cfg.allow_public_without_auth:
        raise ConfigError("serve.host", f"binding to {cfg.host} without a bearer token: set ${cfg.auth_token_env} "
                                        "(or allow_public_without_auth: true)")


def run_serve(cfg: ServeConfig, blocking: bool = True) -> str:
    """Start Serve's HTTP proxy on cfg.host:cfg.port and deploy the scorer; returns the base URL."""
    from raykd.runtime import ensure_ray

    cfg.validate("serve")
    check_exposure(cfg)
    ensure_ray(high_throughput_serve=cfg.ingress == "haproxy")
    serve.start(http_options={"host": cfg.host, "port": cfg.port, "request_timeout_s": cfg.request_timeout_s})
    serve.run(build_app(cfg), name=cfg.app_name, route_prefix=cfg.route_prefix)
    url = f"http://{cfg.host}:{cfg.port}{cfg.route_prefix.rstrip('/')}"
    print(f"[serve] scoring {cfg.model} at {url}/v1/score (page {url}/, docs {url}/docs)", flush=True)
    if blocking:
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            serve.shutdown()
    return url
