"""The Tune stage's config (`raykd tune`, jobs/tune.py): the search space over a student and its distillation."""

from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Annotated, Any, Literal

from pydantic import Field

from raykd.config import (
    Bool,
    Int,
    Location,
    Number,
    PositiveInt,
    PositiveNumber,
    Str,
    TrackingConfig,
    config,
    rule,
    rules,
)
from raykd.data.config import DataConfig
from raykd.distill.config import DistillConfig, StudentConfig


@config
class ParamRange:
    """One dimension of the search space: uniform/loguniform (low, high), randint (low, high inclusive),
    choice (values), or grid (every value, each crossed with the other grid dimensions; `num_samples` then
    counts samples per grid point; random search only)."""

    type: Literal["uniform", "loguniform", "randint", "choice", "grid"]
    low: Number | None = None
    high: Number | None = None
    values: list[Any] | None = None

    @rules
    def _rules(self) -> None:
        if self.type in ("choice", "grid"):
            if not self.values:
                raise rule("values", f"{self.type} needs values")
        elif self.low is None or self.high is None or self.low > self.high:
            raise rule("high", f"{self.type} needs low <= high")
        elif self.type == "loguniform" and self.low <= 0:
            raise rule("low", "loguniform needs low > 0")


@config
class AshaConfig:
    # Off: every trial runs to its end (FIFO), e.g. so the champion's no-KD rival is always there to compare with.
    enabled: Bool = True
    grace_period: PositiveInt = 2
    reduction_factor: Annotated[Int, Field(ge=2)] = 2


SEARCHABLE = sorted({f"student.{f.name}" for f in dataclasses.fields(StudentConfig)}
                    | {f"distill.{f.name}" for f in dataclasses.fields(DistillConfig)})


@config
class TuneJobConfig:
    """Ray Tune over student hyperparameters. Keys of `space` are `student.<field>` or `distill.<field>`."""

    name: Str = "tune"
    output_dir: Location = "runs/tune"
    teacher: Location = "runs/teacher"  # a teacher job's output folder
    data: DataConfig | None = None  # default: the data the teacher prepared (raykd.data.preparation)
    student: StudentConfig = field(default_factory=StudentConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    space: dict[str, ParamRange] = field(default_factory=dict)
    num_samples: PositiveInt = 16
    search_alg: Literal["random", "optuna"] = "optuna"
    max_concurrent_trials: PositiveInt = 2
    cpus_per_trial: PositiveNumber = 1.0
    time_budget_s: PositiveNumber = 900.0
    asha: AshaConfig = field(default_factory=AshaConfig)
    # k > 1: each trial is scored by k-fold cross-validation over the labelled train + validation rows, then
    # refit on all of them (raykd.tune.search); 1: scored on the validation split
    folds: PositiveInt = 1
    max_param_ratio: PositiveNumber = 0.01  # the winner may have at most this share of the teacher's parameters
    min_speedup: PositiveNumber | None = None  # and, if set, be at least this much faster than the teacher
    register_as: Str | None = None  # MLflow registered model name (alias `champion` goes to the winner)
    seed: Int = 0
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    @rules
    def _rules(self) -> None:
        for key, rng in self.space.items():
            if key not in SEARCHABLE:
                raise rule(f"space.{key}", f"unknown hyperparameter (use one of {SEARCHABLE})")
            if rng.type == "grid" and self.search_alg != "random":
                raise rule(f"space.{key}", "a grid needs search_alg: random (Optuna samples instead)")
        if self.folds == 2:
            raise rule("folds", "use 1 (the validation split) or at least 3 folds")
