"""Configs of the knowledge-tracing stages (`raykd kt`, jobs/kt*.py), declared as raykd.config describes."""

from __future__ import annotations

from dataclasses import field
from typing import Annotated, Literal

from pydantic import Field

from raykd.config import (
    Bool,
    Int,
    Location,
    NonNegativeInt,
    NonNegativeNumber,
    Number,
    PositiveInt,
    PositiveNumber,
    ScalingConfig,
    Str,
    TrackingConfig,
    config,
    rule,
    rules,
)

OpenFraction = Annotated[Number, Field(gt=0, lt=1)]


@config
class KTDataConfig:
    """A folder of 3-line sequence files (raykd.kt.data); relative paths are under $RAYKD_DATA_DIR."""

    path: Str = "assistments2009_kt/dkvmn_assist2009_updated"
    train_file: Str | None = None  # default: the one file matching *train*
    test_file: Str | None = None  # default: the one file matching *test*
    skill_names: Str | None = None  # default: *skill_mapping* or *sname_sid* when present; "" for none
    item_skills: Str | None = None  # the item-to-skill map: default *qid_sid* when present; "" for none
    item_names: Str | None = None  # default: *qname_qid* when present; "" for none
    validation: OpenFraction = 0.1  # learners held out of training for early stopping and selection
    seed: Int = 0
    skip_invalid: Bool = False
    # longer sequences are cut into windows of this many attempts (one attempt alone has nothing to predict)
    max_length: Annotated[Int, Field(ge=2)] = 200
    limit: Annotated[Int, Field(ge=2)] | None = None  # keep the first N train and N test sequences (small runs)


@config
class KnowledgeConfig:
    """Where skill embeddings and the skill graph come from (raykd.kt.knowledge)."""

    model: Str = "minilm"  # a zoo model that reads the skill names, or "cooccurrence"
    neighbours: PositiveInt = 8
    # similarity: the graph weighs each skill's neighbours by embedding similarity; prerequisite: a zoo LLM
    # (relation_model) judges, for each neighbour, whether it must be understood first.
    relations: Literal["similarity", "prerequisite"] = "similarity"
    relation_model: Str = "smollm2-135m"

    @rules
    def _rules(self) -> None:
        from raykd.zoo import ZOO  # torch-free

        if self.model != "cooccurrence" and self.model not in ZOO:
            raise rule("model", f"{self.model!r} is neither a zoo model ({', '.join(ZOO)}) nor 'cooccurrence'")
        entry = ZOO.get(self.relation_model)
        if self.relations == "prerequisite" and (entry is None or entry.kind != "llm"):
            raise rule("relation_model", f"{self.relation_model!r} is not an LLM of the model zoo (prerequisites "
                                         "are judged by a language model)")


@config
class KTRecurrentMembersConfig:
    """DKT networks (raykd.kt.models.DKT, one per seed) that join the teacher's AttentionKT members: a recurrent
    model errs differently from an attention one, so their mean ranks answers better than either."""

    seeds: list[int] = field(default_factory=list)  # none by default
    embed: PositiveInt = 64
    hidden: PositiveInt | list[PositiveInt] = 200  # one width, or several: a member per width and seed
    dropout: NonNegativeNumber = 0.3
    epochs: PositiveInt = 15
    batch_size: PositiveInt = 32
    lr: PositiveNumber = 2e-3
    weight_decay: NonNegativeNumber = 0.0
    patience: PositiveInt = 3

    @rules
    def _rules(self) -> None:
        if len(set(self.seeds)) != len(self.seeds):
            raise rule("seeds", "no repeats")


@config
class KTTeacherConfig:
    """The knowledge-tracing teacher: one attention model (raykd.kt.models.AttentionKT) per seed, plus the
    `recurrent` members; its probabilities are the mean of its members'."""

    d_model: PositiveInt = 128
    layers: PositiveInt = 2
    heads: PositiveInt = 4
    dropout: NonNegativeNumber = 0.2
    epochs: PositiveInt = 12
    batch_size: PositiveInt = 32
    lr: PositiveNumber = 1e-3
    weight_decay: NonNegativeNumber = 0.01
    patience: PositiveInt = 3
    seeds: list[int] = field(default_factory=lambda: [0])
    recurrent: KTRecurrentMembersConfig = field(default_factory=KTRecurrentMembersConfig)
    # greedy: the teacher is the subset of the trained members whose mean predicts the validation learners best
    # (greedy forward selection), so a member kind or width that does not suit the data drops out; all: every one.
    select: Literal["greedy", "all"] = "greedy"

    @rules
    def _rules(self) -> None:
        if self.d_model % self.heads:
            raise rule("d_model", f"must be a multiple of heads ({self.heads})")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise rule("seeds", "at least one seed (one attention member each), no repeats")


@config
class KTStudentConfig:
    """The DKT-style student (raykd.kt.models.DKT) and its distillation (raykd.distill.losses.sequence_kd)."""

    embed: PositiveInt = 32
    hidden: PositiveInt = 64
    dropout: NonNegativeNumber = 0.1
    epochs: PositiveInt = 15
    batch_size: PositiveInt = 32
    lr: PositiveNumber = 2e-3
    patience: PositiveInt = 3
    kd_weight: NonNegativeNumber = 1.0  # lambda; 0 is the no-KD twin
    temperature: PositiveNumber = 1.0
    mastery_weight: NonNegativeNumber = 0.1  # weight of the every-skill mastery term inside the KD term
    seed: Int = 0
    # Rounds of raykd.kt.cohort.calibrate on the champion before it is saved (0: none): played training
    # cohorts then reproduce the real per-skill correct rates.
    calibration_rounds: NonNegativeInt = 3


@config
class KTSearchConfig:
    """Ray Tune over the student: every (hidden, kd_weight, temperature) with kd_weight > 0, plus one no-KD twin
    per hidden size, each trained with every seed; the setting with the best mean validation AUC wins, and its
    best seed is the champion."""

    seeds: list[int] = field(default_factory=lambda: [0])
    hidden: list[PositiveInt] = field(default_factory=lambda: [64])
    kd_weight: list[NonNegativeNumber] = field(default_factory=lambda: [0.0, 1.0])
    temperature: list[PositiveNumber] = field(default_factory=lambda: [1.0])
    cpus_per_trial: PositiveNumber = 1.0

    @rules
    def _rules(self) -> None:
        if 0.0 not in self.kd_weight:
            raise rule("kd_weight", "must include 0: the no-KD twin every KD student is compared with")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise rule("seeds", "at least one seed, no repeats")
        if not self.hidden:
            raise rule("hidden", "at least one hidden size")
        if not self.temperature:
            raise rule("temperature", "at least one temperature")


@config
class SimulateConfig:
    seed: Int = 0
    cohorts: PositiveInt = 5  # simulated cohorts (seeds seed..seed+cohorts-1); compared through their mean
    max_attempt: PositiveInt = 10  # learning curves: correct rate at the 1st..Nth attempt on a skill


@config
class KTJobConfig:
    """One knowledge-tracing pipeline: data -> knowledge -> teacher -> soft labels -> students -> simulation."""

    name: Str = "kt"
    output_dir: Location = "runs/kt"
    data: KTDataConfig = field(default_factory=KTDataConfig)
    knowledge: KnowledgeConfig = field(default_factory=KnowledgeConfig)
    teacher: KTTeacherConfig = field(default_factory=KTTeacherConfig)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    student: KTStudentConfig = field(default_factory=KTStudentConfig)
    search: KTSearchConfig = field(default_factory=KTSearchConfig)
    simulate: SimulateConfig = field(default_factory=SimulateConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    register_as: Str | None = None  # MLflow registered-model name for the champion
