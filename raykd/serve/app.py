"""The scoring endpoint: a Ray Serve deployment with a FastAPI ingress.

    POST /v1/score   {"responses": [{"task", "text", "id"?}, ...]} or one {"task", "text", "id"?}
    GET  /v1/tasks   tasks, label names and score ranges the model serves
    GET  /healthz    liveness and the model being served
    GET  /openapi.json, /docs

Responses are scored through `@serve.batch`, so concurrent requests share model calls. A replica serving
`models:/NAME@ALIAS` checks the alias every `poll_interval_s` and swaps in a new champion once it has
loaded, without dropping requests (on Kubernetes the RayService upgrade path does the same across pods).
Response texts are children's data: nothing here logs them, and error messages never echo them.
"""


import asyncio
import hashlib
import logging
import os
import secrets
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fastapi import Body, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from ray import serve

from raykd.config import ServeConfig, from_dict

logger = logging.getLogger("raykd.serve")
API_VERSION = "1"


class ResponseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: str = Field(min_length=1, max_length=200, description="rubric task, as listed by GET /v1/tasks")
    text: str = Field(description="the student's response")
    id: str | None = Field(default=None, max_length=200, description="your id for the response, echoed back")


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


@app.exception_handler(RequestValidationError)
async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    # FastAPI echoes the offending input by default; a response text must not travel into logs or traces.
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
    return JSONResponse(status_code=422, content={"detail": errors})


@app.middleware("http")
async def _utf8_body(request: Request, call_next: Any) -> Any:
    if request.method in ("POST", "PUT", "PATCH"):
        body = await request.body()
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return JSONResponse(status_code=400, content={"detail": "request body is not valid UTF-8"})
    return await call_next(request)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def require_token(request: Request, expected_sha256: str | None) -> None:
    """401 unless the request carries the bearer token whose sha256 is `expected_sha256` (None: no auth).
    Only the digest travels in the deployment arguments; the token stays in the deploying process's
    environment (a Kubernetes Secret there)."""
    if not expected_sha256:
        return
    header = request.headers.get("authorization", "")
    given = token_digest(header[7:]) if header.startswith("Bearer ") else ""
    if not secrets.compare_digest(given, expected_sha256):
        raise HTTPException(status_code=401, detail="missing or wrong bearer token",
                            headers={"WWW-Authenticate": "Bearer"})


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


@serve.deployment(name="scorer")
@serve.ingress(app)
class ScoringDeployment:
    def __init__(self, config: dict[str, Any], token_sha256: str | None = None):
        self.cfg = from_dict(ServeConfig, config, "serve")
        self._token_sha256 = token_sha256
        self._lock = threading.Lock()
        self._load(self.cfg.model)
        self._batch.set_max_batch_size(self.cfg.max_batch_size)
        self._batch.set_batch_wait_timeout_s(self.cfg.batch_wait_timeout_s)
        if self._alias and self.cfg.poll_interval_s > 0:
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
        with self._lock:  # swap both together: a request sees the old model or the new one, never a mix
            self._scorer, self._info, self._alias = scorer, info, alias
        logger.info("serving %s version %s (%s)", info.name, info.version, info.kind)

    def _watch(self) -> None:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.cfg.tracking_uri)
        while True:
            time.sleep(self.cfg.poll_interval_s)
            try:
                latest = client.get_model_version_by_alias(self._info.name, self._alias).version
                if str(latest) != self._info.version:
                    logger.info("new champion: %s version %s -> %s", self._info.name, self._info.version, latest)
                    self._load(self.cfg.model)
            except Exception as e:  # the registry may be briefly unreachable; keep serving the current model
                logger.warning("champion check failed: %s", e.__class__.__name__)

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Serve `user_config` updates (e.g. a RayService spec change) switch models in place."""
        if user_config.get("model") and user_config["model"] != self.cfg.model:
            self.cfg.model = user_config["model"]
            self._load(self.cfg.model)

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.005)
    async def _batch(self, items: list[tuple[str, str]]) -> list[Any]:
        with self._lock:
            scorer = self._scorer
        tasks = [t for t, _ in items]
        texts = [x for _, x in items]
        return await asyncio.to_thread(scorer.predict_proba, texts, tasks, None, None, len(items))

    # ------------------------------------------------------------------------------------------ routes
    @app.post("/v1/score", response_model=ScoreResponse,
              responses={400: {"description": "body is not UTF-8"}, 401: {"description": "bad token"},
                         413: {"description": "too many responses"}, 422: {"description": "invalid request"}})
    async def score(self, http: Request, request: ScoreRequest | ResponseIn = Body(...)) -> ScoreResponse:  # noqa: B008
        from raykd.scoring import predictions

        require_token(http, self._token_sha256)
        items = request.responses if isinstance(request, ScoreRequest) else [request]
        if len(items) > self.cfg.max_responses:
            raise HTTPException(status_code=413, detail=f"{len(items)} responses in one request; "
                                                        f"at most {self.cfg.max_responses}")
        with self._lock:
            scorer, info = self._scorer, self._info
        known = scorer.layout.names
        for i, item in enumerate(items):
            if item.task not in known:
                raise HTTPException(status_code=422, detail=f"responses[{i}]: unknown task {item.task!r}; "
                                                            f"this model serves {known}")
            if not item.text.strip():
                raise HTTPException(status_code=422, detail=f"responses[{i}]: empty text")
            if len(item.text) > self.cfg.max_text_chars:
                raise HTTPException(status_code=422, detail=f"responses[{i}]: text has {len(item.text)} characters; "
                                                            f"at most {self.cfg.max_text_chars}")
        probs = await asyncio.gather(*[self._batch((item.task, item.text)) for item in items])
        preds = predictions(scorer, [i.task for i in items], probs)
        results = [
            ScoredResponse(id=item.id, task=item.task, prediction=pred,
                           probabilities={lab: float(v) for lab, v in zip(scorer.layout.spec(item.task).labels, p,
                                                                          strict=True)})
            for item, p, pred in zip(items, probs, preds, strict=True)
        ]
        logger.info("scored %d response(s)", len(items))  # counts only, never texts
        return ScoreResponse(model=info, results=results)

    @app.get("/v1/tasks", response_model=TasksResponse, responses={401: {"description": "bad token"}})
    async def tasks(self, http: Request) -> TasksResponse:
        require_token(http, self._token_sha256)
        with self._lock:
            scorer, info = self._scorer, self._info
        out = []
        for t in scorer.layout.tasks:
            numeric = t.ordinal and all(lab.lstrip("-").isdigit() for lab in t.labels)
            out.append(TaskInfo(name=t.name, kind=t.kind, labels=list(t.labels), ordinal=t.ordinal,
                                score_range=[int(t.labels[0]), int(t.labels[-1])] if numeric else None))
        return TasksResponse(model=info, tasks=out)

    @app.get("/healthz", response_model=Health)
    async def healthz(self) -> Health:
        return Health(status="ok", model=self._info)


def build_app(cfg: ServeConfig) -> Any:
    """The Serve application for `cfg` (replicas/autoscaling and CPU per replica from the config)."""
    from raykd.tracking import default_tracking_uri

    if cfg.tracking_uri is None and cfg.model.startswith(("models:/", "runs:/")):
        cfg.tracking_uri = default_tracking_uri()
    options: dict[str, Any] = {"ray_actor_options": {"num_cpus": cfg.num_cpus_per_replica}}
    if cfg.autoscaling is not None:
        options["autoscaling_config"] = asdict(cfg.autoscaling)
    else:
        options["num_replicas"] = cfg.num_replicas
    token = os.environ.get(cfg.auth_token_env)
    return ScoringDeployment.options(**options).bind(asdict(cfg), token_digest(token) if token else None)


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
    from raykd.teacher.job import ensure_ray

    check_exposure(cfg)
    ensure_ray()
    serve.start(http_options={"host": cfg.host, "port": cfg.port})
    serve.run(build_app(cfg), name=cfg.app_name, route_prefix=cfg.route_prefix)
    url = f"http://{cfg.host}:{cfg.port}{cfg.route_prefix.rstrip('/')}"
    print(f"[serve] scoring {cfg.model} at {url}/v1/score (docs {url}/docs)", flush=True)
    if blocking:
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            serve.shutdown()
    return url
