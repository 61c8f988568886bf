"""Configs of the knowledge-tracing stages (validated at load by `raykd.config.load_config`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from raykd.config import STRICT, Bool, Int, Number, ScalingConfig, Str, TrackingConfig, validate_sections
from raykd.errors import ConfigError


@dataclass
class KTDataConfig:
    """A folder of 3-line sequence files (raykd.kt.data); relative paths are under $RAYKD_DATA_DIR."""

    __pydantic_config__ = STRICT
    path: Str = "assistments2009_kt/dkvmn_assist2009_updated"
    train_file: Str | None = None  # default: the one file matching *train*
    test_file: Str | None = None  # default: the one file matching *test*
    skill_names: Str | None = None  # default: *skill_mapping* when present; "" for none
    validation: Number = 0.1  # learners held out of training for early stopping and selection
    seed: Int = 0
    skip_invalid: Bool = False
    max_length: Int = 200  # longer sequences are cut into windows of this many attempts
    limit: Int | None = None  # keep the first N train and N test sequences (small runs)

    def validate(self, where: str) -> None:
        if not 0 < self.validation < 1:
            raise ConfigError(f"{where}.validation", "must be in (0, 1)")
        if self.max_length < 2:
            raise ConfigError(f"{where}.max_length", "must be >= 2 (one attempt has nothing to predict)")
        if self.limit is not None and self.limit < 2:
            raise ConfigError(f"{where}.limit", "must be >= 2")


@dataclass
class KnowledgeConfig:
    """Where skill embeddings and the skill graph come from (raykd.kt.knowledge)."""

    __pydantic_config__ = STRICT
    model: Str = "minilm"  # a zoo model that reads the skill names, or "cooccurrence"
    neighbours: Int = 8
    # similarity: the graph weighs each skill's neighbours by embedding similarity; prerequisite: a zoo LLM
    # (relation_model) judges, for each neighbour, whether it must be understood first.
    relations: Literal["similarity", "prerequisite"] = "similarity"
    relation_model: Str = "smollm2-135m"

    def validate(self, where: str) -> None:
        if self.neighbours < 1:
            raise ConfigError(f"{where}.neighbours", "must be >= 1")
        if self.model != "cooccurrence":
            from raykd.zoo import ZOO

            if self.model not in ZOO:
                raise ConfigError(f"{where}.model", f"{self.model!r} is neither a zoo model ({', '.join(ZOO)}) "
                                                    "nor 'cooccurrence'")
        if self.relations == "prerequisite":
            from raykd.zoo import ZOO

            entry = ZOO.get(self.relation_model)
            if entry is None or entry.kind != "llm":
                raise ConfigError(f"{where}.relation_model", f"{self.relation_model!r} is not an LLM of the model "
                                                             "zoo (prerequisites are judged by a language model)")


@dataclass
class KTRecurrentMembersConfig:
    """DKT networks (raykd.kt.models.DKT, one per seed) that join the teacher's AttentionKT members: a recurrent
    model errs differently from an attention one, so their mean ranks answers better than either."""

    __pydantic_config__ = STRICT
    seeds: list[int] = field(default_factory=list)  # none by default
    embed: Int = 64
    hidden: Int = 200
    dropout: Number = 0.3
    epochs: Int = 15
    batch_size: Int = 32
    lr: Number = 2e-3
    weight_decay: Number = 0.0
    patience: Int = 3

    def validate(self, where: str) -> None:
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"{where}.seeds", "no repeats")
        if min(self.embed, self.hidden, self.epochs, self.batch_size, self.patience) < 1:
            raise ConfigError(where, "embed, hidden, epochs, batch_size and patience must be >= 1")


@dataclass
class KTTeacherConfig:
    """The knowledge-tracing teacher: one attention model (raykd.kt.models.AttentionKT) per seed, plus the
    `recurrent` members; its probabilities are the mean of its members'."""

    __pydantic_config__ = STRICT
    d_model: Int = 128
    layers: Int = 2
    heads: Int = 4
    dropout: Number = 0.2
    epochs: Int = 12
    batch_size: Int = 32
    lr: Number = 1e-3
    weight_decay: Number = 0.01
    patience: Int = 3
    seeds: list[int] = field(default_factory=lambda: [0])
    recurrent: KTRecurrentMembersConfig = field(default_factory=KTRecurrentMembersConfig)

    def validate(self, where: str) -> None:
        if self.d_model % self.heads:
            raise ConfigError(f"{where}.d_model", f"must be a multiple of heads ({self.heads})")
        if min(self.layers, self.epochs, self.batch_size, self.patience) < 1:
            raise ConfigError(f"{where}", "layers, epochs, batch_size and patience must be >= 1")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"{where}.seeds", "at least one seed (one attention member each), no repeats")
        self.recurrent.validate(f"{where}.recurrent")


@dataclass
class KTStudentConfig:
    """The DKT-style student (raykd.kt.models.DKT) and its distillation (raykd.distill.losses.sequence_kd)."""

    __pydantic_config__ = STRICT
    embed: Int = 32
    hidden: Int = 64
    dropout: Number = 0.1
    epochs: Int = 15
    batch_size: Int = 32
    lr: Number = 2e-3
    patience: Int = 3
    kd_weight: Number = 1.0  # lambda; 0 is the no-KD twin
    temperature: Number = 1.0
    mastery_weight: Number = 0.1  # weight of the every-skill mastery term inside the KD term
    seed: Int = 0
    # Rounds of raykd.kt.simulate.calibrate on the champion before it is saved (0: none): played training
    # cohorts then reproduce the real per-skill correct rates.
    calibration_rounds: Int = 3

    def validate(self, where: str) -> None:
        if min(self.embed, self.hidden, self.epochs, self.batch_size, self.patience) < 1:
            raise ConfigError(where, "embed, hidden, epochs, batch_size and patience must be >= 1")
        if self.kd_weight < 0 or self.temperature <= 0 or self.mastery_weight < 0:
            raise ConfigError(where, "kd_weight and mastery_weight must be >= 0, temperature > 0")
        if self.calibration_rounds < 0:
            raise ConfigError(f"{where}.calibration_rounds", "must be >= 0")


@dataclass
class KTSearchConfig:
    """Ray Tune over the student: every (hidden, kd_weight, temperature) with kd_weight > 0, plus one no-KD twin
    per hidden size, each trained with every seed; the setting with the best mean validation AUC wins, and its
    best seed is the champion."""

    __pydantic_config__ = STRICT
    seeds: list[int] = field(default_factory=lambda: [0])
    hidden: list[int] = field(default_factory=lambda: [64])
    kd_weight: list[float] = field(default_factory=lambda: [0.0, 1.0])
    temperature: list[float] = field(default_factory=lambda: [1.0])
    cpus_per_trial: Number = 1.0

    def validate(self, where: str) -> None:
        if 0.0 not in self.kd_weight:
            raise ConfigError(f"{where}.kd_weight", "must include 0: the no-KD twin every KD student is compared with")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"{where}.seeds", "at least one seed, no repeats")
        if not self.hidden or not self.temperature or min(self.hidden) < 1 or min(self.temperature) <= 0:
            raise ConfigError(where, "hidden sizes must be >= 1 and temperatures > 0")


@dataclass
class SimulateConfig:
    __pydantic_config__ = STRICT
    seed: Int = 0
    cohorts: Int = 5  # simulated cohorts (seeds seed..seed+cohorts-1); compared through their mean
    max_attempt: Int = 10  # learning curves: correct rate at the 1st..Nth attempt on a skill

    def validate(self, where: str) -> None:
        if self.cohorts < 1 or self.max_attempt < 1:
            raise ConfigError(where, "cohorts and max_attempt must be >= 1")


@dataclass
class KTJobConfig:
    """One knowledge-tracing pipeline: data -> knowledge -> teacher -> soft labels -> students -> simulation."""

    __pydantic_config__ = STRICT
    name: Str = "kt"
    output_dir: Str = "runs/kt"
    data: KTDataConfig = field(default_factory=KTDataConfig)
    knowledge: KnowledgeConfig = field(default_factory=KnowledgeConfig)
    teacher: KTTeacherConfig = field(default_factory=KTTeacherConfig)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    student: KTStudentConfig = field(default_factory=KTStudentConfig)
    search: KTSearchConfig = field(default_factory=KTSearchConfig)
    simulate: SimulateConfig = field(default_factory=SimulateConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    register_as: Str | None = None  # MLflow registered-model name for the champion

    def validate(self, where: str = "config") -> None:
        validate_sections(self, where, "data", "knowledge", "teacher", "student", "search", "simulate")
