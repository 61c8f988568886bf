"""The scoring endpoint: a Ray Serve deployment with a FastAPI ingress.

    GET  /               the scoring page for teachers (static HTML and a little JavaScript)
    POST /v1/score       {"responses": [{"task", "text", "id"?}, ...]} or one {"task", "text", "id"?}
    POST /v1/score/file  a CSV/TSV/JSONL file as the body -> the scored CSV that `raykd predict` writes
    GET  /v1/tasks       tasks, label names and score ranges the model serves
    POST /v1/simulate, GET /v1/skills   the learner simulator, when one is served (raykd.serve.simulate)
    GET  /healthz        liveness, the model being served, and whether a newer champion failed to load
    GET  /openapi.json, /docs

One request's path: the proxy routes it to a replica with a free slot (`max_ongoing_requests`; beyond the
replicas' slots the proxy queues `max_queued_requests`, then answers 503). On the replica the guard
(raykd.serve.guard) checks the token and the body's size before anything reads the body; the route reads the
body once, validates it with pydantic, and refuses at once (503 + Retry-After, raykd.serve.admission) a request
it could not start within `max_queue_wait_s` at the rate it is scoring now. Accepted requests wait in
`@serve.batch`, which packs the responses of concurrent requests into one model call of up to `max_batch_size`
responses. A student runs on the replica's event loop (a thread hop would cost more than the model); a teacher
runs in a thread. `Server-Timing` gives each request's time in the batch queue and in the model, and the app's.

The model comes from raykd.serve.champion (one cache folder per version, hot swaps, back-off for a broken
champion). Response texts are children's data: nothing here logs or stores them, and errors never echo them.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures, which Ray Serve rewrites for
# class-based views, and string annotations would no longer resolve there.
import asyncio
import functools
import logging
import math
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse, Response
from ray import serve
from starlette.requests import ClientDisconnect

from raykd.config import from_dict
from raykd.serve import simulate
from raykd.serve.admission import Admission
from raykd.serve.body import SECURED, client_gone, decode_json, validated
from raykd.serve.champion import ModelSource, Served
from raykd.serve.config import ServeConfig
from raykd.serve.guard import Guard, GuardPolicy
from raykd.serve.schemas import (
    MAX_ID_CHARS,
    Health,
    ResponseIn,
    ScoreRequest,
    ScoreResponse,
    SimulateRequest,
    TaskInfo,
    TasksResponse,
)

logger = logging.getLogger("raykd.serve")
API_VERSION = "1"
STATIC = Path(__file__).resolve().parent / "static"
# A student scores this many responses in a few milliseconds on the event loop; a larger batch (or any teacher
# batch) runs in a thread, so the loop keeps answering, and HAProxy's health checks keep passing.
INLINE_RESPONSES = 256


def _replica() -> Any:
    return serve.get_replica_context().servable_object


app = FastAPI(title="raykd scoring API", version=API_VERSION,
              description="Rubric scores for student responses from a distilled raykd model.")
app.include_router(simulate.router)
app.add_exception_handler(ClientDisconnect, client_gone)
app.add_middleware(Guard, policy=lambda: _replica().guard)


def _openapi() -> dict[str, Any]:
    """FastAPI's schema plus the request bodies the routes read themselves (so /docs and fuzzers see them) and
    the bearer scheme the guard enforces."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for model in (ScoreRequest, ResponseIn, SimulateRequest):
        body = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(body.pop("$defs", {}))
        schemas[model.__name__] = body
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer",
                                                "description": "the token in $RAYKD_SERVE_TOKEN (when the "
                                                               "endpoint has one)"}}
    app.openapi_schema = schema
    return schema


app.openapi = _openapi  # type: ignore[method-assign]
SCORE_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"anyOf": [
    {"$ref": "#/components/schemas/ScoreRequest"}, {"$ref": "#/components/schemas/ResponseIn"}]}}}}}
FILE_BODY = {"requestBody": {"required": True, "content": {
    media: {"schema": {"type": "string", "format": "binary"}}
    for media in ("text/csv", "text/tab-separated-values", "application/x-ndjson")}}}


def parse_score_body(body: bytes) -> list[ResponseIn]:
    """The responses of a score request, from its raw body: 400 for non-UTF-8, 422 for anything invalid."""
    obj = decode_json(body)
    if isinstance(obj, dict) and "responses" in obj:
        return validated(ScoreRequest, obj).responses
    return [validated(ResponseIn, obj)]


@dataclass(frozen=True)
class Job:
    """One request's responses waiting for a model call."""

    served: Served
    tasks: list[str]
    texts: list[str]
    questions: list[str | None]
    references: list[str | None]


def busy(detail: str, retry_after_s: float, status: int = 503) -> HTTPException:
    return HTTPException(status_code=status, detail=detail, headers={"Retry-After": str(math.ceil(retry_after_s))})


@serve.deployment(name="scorer")
@serve.ingress(app)
class ScoringDeployment:
    def __init__(self, config: dict[str, Any], token_sha256: str | None = None):
        from raykd.confidence import review_policy
        from raykd.scoring import load_scorer

        self.cfg = cfg = from_dict(ServeConfig, config, "serve")
        self.guard = GuardPolicy(token_sha256, {"/v1/score": cfg.max_request_bytes,
                                                "/v1/simulate": cfg.max_request_bytes,
                                                "/v1/score/file": cfg.max_file_bytes})
        self.admission = Admission(cfg.max_queue_wait_s, cfg.retry_after_s)
        self._files = asyncio.Semaphore(1)  # one file at a time per replica: files can be large
        cache_root = Path(cfg.model_cache_dir or Path(tempfile.gettempdir()) / "raykd-models")
        cache_root.mkdir(parents=True, exist_ok=True)
        self._cache = Path(tempfile.mkdtemp(prefix="replica-", dir=cache_root))
        self._swap = threading.Lock()
        self._stop = threading.Event()
        self.simulator = None
        try:
            review = review_policy(cfg.review) if cfg.review is not None else None
            self.source = ModelSource(cfg.model, cfg.tracking_uri, self._cache, cfg.poll_interval_s,
                                      cfg.max_backoff_s, functools.partial(load_scorer, review=review))
            if cfg.simulator:
                from raykd.kt.simulator import Simulator

                self.simulator = Simulator.load(cfg.simulator, cfg.tracking_uri, dst_path=self._cache / "simulator")
        except BaseException:  # a replica that cannot start leaves no download behind
            shutil.rmtree(self._cache, ignore_errors=True)
            raise
        self._batch.set_max_batch_size(cfg.max_batch_size)
        self._batch.set_batch_wait_timeout_s(cfg.batch_wait_timeout_s)
        if self.source.served.alias and cfg.poll_interval_s > 0:
            threading.Thread(target=self._watch, daemon=True, name="raykd-champion-watch").start()

    @property
    def served(self) -> Served:
        return self.source.served

    # ---------------------------------------------------------------------------------- model lifecycle
    def _watch(self) -> None:
        while not self._stop.wait(self.cfg.poll_interval_s):
            try:
                with self._swap:
                    self.source.check(time.monotonic())
            except Exception as e:  # the registry may be briefly unreachable; keep serving the current model
                logger.warning("champion check failed: %s", e.__class__.__name__)

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Serve `user_config` updates (e.g. a RayService spec change) switch models in place."""
        if user_config.get("model") and user_config["model"] != self.cfg.model:
            with self._swap:
                self.source.switch(user_config["model"])
            self.cfg.model = user_config["model"]

    def __del__(self) -> None:
        """Replica shutdown: the watcher stops and the model cache goes."""
        self._stop.set()
        shutil.rmtree(self._cache, ignore_errors=True)

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
    @app.post("/v1/score", response_model=ScoreResponse, openapi_extra={**SCORE_BODY, **SECURED},
              responses={400: {"description": "body is not UTF-8"}, 401: {"description": "bad token"},
                         413: {"description": "too many responses, or a body over the limit"},
                         422: {"description": "invalid request"},
                         503: {"description": "busy: retry after the Retry-After header's seconds"}})
    async def score(self, request: Request) -> Response:
        from raykd.scoring import judged, predictions

        t_in = time.perf_counter()
        self.admission.admit(0)  # already full: refuse before reading and parsing the body (refusals stay cheap)
        items = parse_score_body(await request.body())
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
        calibrated, verdicts = judged(served.scorer, tasks, probs)
        results = [{"id": item.id, "task": item.task, "prediction": pred,
                    "probabilities": dict(zip(layout.spec(item.task).labels, p.tolist(), strict=True)),
                    "confidence": v.confidence, "score_set": list(v.score_set), "needs_review": v.needs_review}
                   for item, p, pred, v in zip(items, calibrated, predictions(served.scorer, tasks, probs), verdicts,
                                               strict=True)]
        queued_ms = (batch_start - t_in) * 1000
        timing = (f"queue;dur={queued_ms:.2f}, model;dur={model_s * 1000:.2f}, "
                  f"app;dur={(time.perf_counter() - t_in) * 1000:.2f}")
        return JSONResponse({"model": served.info_json, "results": results}, headers={"Server-Timing": timing})

    @app.post("/v1/score/file", openapi_extra={**FILE_BODY, **SECURED}, response_class=Response,
              responses={200: {"content": {"text/csv": {}}, "description": "the scored file, as `raykd predict` "
                                                                            "writes it"},
                         401: {"description": "bad token"}, 413: {"description": "file too large"},
                         415: {"description": "not a CSV, TSV or JSONL upload"},
                         422: {"description": "invalid file"},
                         429: {"description": "another file is being scored here: retry after Retry-After"},
                         503: {"description": "busy"}})
    async def score_file(self, request: Request,
                         name: str = Query("responses.csv", max_length=1000,
                                           description="the file's name; its suffix says the format")) -> Response:
        """Score a whole file (the scoring page's upload). The file stays in memory and is never written."""
        from raykd.errors import DataError
        from raykd.io import spreadsheet_safe
        from raykd.predict.rows import score_dataset, scoring_dataset
        from raykd.serve.upload import UploadLimits, UploadRefused, content_disposition, parse_upload, upload_name

        try:
            filename = upload_name(name)
        except UploadRefused as e:
            raise HTTPException(status_code=e.status, detail=e.detail) from None
        self.admission.admit(0)
        if self._files.locked():  # before reading the body: the refusal costs nothing
            raise busy("another file is being scored here; retry later", self.cfg.retry_after_s, 429)
        served = self.served
        limits = UploadLimits(self.cfg.max_file_responses, self.cfg.max_text_chars, MAX_ID_CHARS)
        async with self._files:
            body = await request.body()
            try:
                frame = await asyncio.to_thread(parse_upload, filename, body, limits)
                ds = scoring_dataset(frame, served.scorer.layout, filename)
            except UploadRefused as e:
                raise HTTPException(status_code=e.status, detail=e.detail) from None
            except DataError as e:
                raise HTTPException(status_code=422, detail=str(e)) from None
            self.admission.admit(len(ds))
            try:
                scored, _ = await asyncio.to_thread(score_dataset, served.scorer, ds)
            finally:
                self.admission.done(len(ds))
        stem = Path(filename).stem or "responses"
        logger.info("scored a file of %d response(s)", len(scored))  # counts only, never texts
        return Response(spreadsheet_safe(scored).to_csv(index=False), media_type="text/csv",
                        headers={"Content-Disposition": content_disposition(f"{stem}.scored.csv"),
                                 "X-Raykd-Needs-Review": str(int(scored["needs_review"].sum()))})

    @app.get("/v1/tasks", response_model=TasksResponse, openapi_extra=SECURED,
             responses={401: {"description": "bad token"}})
    async def tasks(self) -> TasksResponse:
        served = self.served
        out = []
        for t in served.scorer.layout.tasks:
            numeric = t.ordinal and all(lab.lstrip("-").isdigit() for lab in t.labels)
            out.append(TaskInfo(name=t.name, kind=t.kind, labels=list(t.labels), ordinal=t.ordinal,
                                score_range=[int(t.labels[0]), int(t.labels[-1])] if numeric else None,
                                low=t.low, high=t.high, step=t.step))
        return TasksResponse(model=served.info, tasks=out)

    @app.get("/healthz", response_model=Health)
    async def healthz(self) -> Health:
        stale = self.source.staleness(time.monotonic())
        return Health(status="stale" if stale else "ok", model=self.served.info, stale=stale)

    @app.get("/", include_in_schema=False)
    async def page(self) -> FileResponse:
        """The scoring page: one static file; the token and the texts stay in the browser tab."""
        return FileResponse(STATIC / "index.html", media_type="text/html")
