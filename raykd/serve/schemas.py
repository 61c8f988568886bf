"""What the endpoint reads and answers: pydantic models for every request and response body."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_ID_CHARS = 200  # a response id, in a request and in an uploaded file
MAX_SEED = 2**63 - 1


class ResponseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: str = Field(min_length=1, max_length=200, description="rubric task, as listed by GET /v1/tasks")
    text: str = Field(description="the student's response")
    id: str | None = Field(default=None, max_length=MAX_ID_CHARS, description="your id for the response, echoed back")
    question: str | None = Field(default=None, description="the question asked (question-aware models read it)")
    reference: str | None = Field(default=None, description="reference answer(s) (question-aware models)")


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    responses: list[ResponseIn] = Field(min_length=1)


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
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED, description="seed of the drawn answers")


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


class ModelInfo(BaseModel):
    name: str
    version: str
    kind: str
    uri: str


class ScoredResponse(BaseModel):
    id: str | None
    task: str
    prediction: str | list[str] = Field(description="the score/category, or the rubric labels that apply "
                                                    "(a continuous score as text: \"3.5\")")
    probabilities: dict[str, float] = Field(description="calibrated, when the model was saved with a calibration "
                                                        "(a continuous task: its predicted mean and sd)")
    confidence: float = Field(description="the top score's probability (multi-label: the least sure label's; "
                                          "continuous: the chance the rounded score is the true one)")
    score_set: list[str] = Field(description="the scores the response may deserve at the model's conformal "
                                             "level (a continuous task: the interval's two ends; empty for "
                                             "multi-label tasks and uncalibrated models)")
    needs_review: bool = Field(description="a person should score it: its confidence is below the review cut")


class ScoreResponse(BaseModel):
    model: ModelInfo
    results: list[ScoredResponse]


class TaskInfo(BaseModel):
    name: str
    kind: str
    labels: list[str]
    ordinal: bool
    score_range: list[int] | None = None
    # A continuous task's range and step, so a client can rebuild the task (raykd.serve.client).
    low: float | None = None
    high: float | None = None
    step: float | None = None


class TasksResponse(BaseModel):
    model: ModelInfo
    tasks: list[TaskInfo]


class Staleness(BaseModel):
    """A newer champion the replica could not load: it keeps serving the version it has."""

    wanted_version: str
    failures: int
    reason: str
    next_attempt_in_s: float


class Health(BaseModel):
    status: str = Field(description="ok, or stale: a newer registered champion failed to load (see stale)")
    model: ModelInfo
    stale: Staleness | None = None


def validation_detail(error: ValidationError, prefix: tuple[Any, ...] = ("body",)) -> list[dict[str, Any]]:
    """pydantic errors without the offending input: a response text must not travel into logs or traces."""
    return [{"loc": [*prefix, *e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in error.errors(include_input=False, include_url=False, include_context=False)]
