"""The learner-simulator routes, beside the scorer in the same application (`serve.simulator` in the config).

    POST /v1/simulate   {"history": [{"skill", "correct"}, ...], "next_skills": [...], "sample"?, "seed"?}
    GET  /v1/skills     the skills the simulator knows, with names where the data had them

Learner histories are children's data: nothing here logs them, and errors never echo them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, HTTPException, Request

from raykd.serve.body import SECURED, json_body
from raykd.serve.schemas import SimulateRequest, SimulateResponse, SkillInfo, SkillsResponse

router = APIRouter()
SIMULATE_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "$ref": "#/components/schemas/SimulateRequest"}}}}}


def _deployment() -> Any:
    from ray import serve

    return serve.get_replica_context().servable_object


def _simulator(deployment: Any) -> Any:
    if deployment.simulator is None:
        raise HTTPException(status_code=404, detail="no simulator is served here (serve config: simulator)")
    return deployment.simulator


@router.post("/v1/simulate", response_model=SimulateResponse, openapi_extra={**SIMULATE_BODY, **SECURED},
             responses={400: {"description": "body is not UTF-8"}, 401: {"description": "bad token"},
                        404: {"description": "no simulator served"}, 413: {"description": "body too large"},
                        422: {"description": "invalid request: unknown skill, history too long, wrong types"},
                        503: {"description": "busy: retry after the Retry-After header's seconds"}})
async def simulate(request: Request) -> Any:
    from raykd.kt.simulator import UnknownSkill

    deployment = _deployment()
    sim = _simulator(deployment)
    cfg = deployment.cfg
    deployment.admission.admit(0)
    ask = json_body(await request.body(), SimulateRequest)
    for name, items, limit in (("history", ask.history, cfg.max_history),
                               ("next_skills", ask.next_skills, cfg.max_next_skills)):
        if len(items) > limit:
            raise HTTPException(status_code=422, detail=f"{name} has {len(items)} items; at most {limit}")
    try:
        out = await asyncio.to_thread(sim.predict, [(a.skill, a.correct) for a in ask.history], ask.next_skills,
                                      ask.sample, ask.seed)
    except UnknownSkill as e:
        raise HTTPException(status_code=422, detail=f"{e.where}: unknown skill {e.skill}; GET /v1/skills "
                                                    "lists the simulator's skills") from None
    return SimulateResponse(simulator=cfg.simulator or "", probabilities=out.probabilities, answers=out.answers)


@router.get("/v1/skills", response_model=SkillsResponse, openapi_extra=SECURED,
            responses={401: {"description": "bad token"}, 404: {"description": "no simulator served"}})
async def skills() -> SkillsResponse:
    deployment = _deployment()
    sim = _simulator(deployment)
    return SkillsResponse(simulator=deployment.cfg.simulator or "", max_history=deployment.cfg.max_history,
                          skills=[SkillInfo(id=s, name=sim.names.get(s)) for s in sim.ids])
