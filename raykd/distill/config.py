"""The student architectures, how a student learns, and the distill stage (`raykd distill`, jobs/distill.py)."""

from __future__ import annotations

from dataclasses import field
from typing import Literal

from raykd.config import (
    Bool,
    Fraction,
    Int,
    Location,
    NonNegativeNumber,
    PositiveInt,
    PositiveNumber,
    ReviewConfig,
    Str,
    TrackingConfig,
    config,
    rule,
    rules,
)
from raykd.data.config import DataConfig
from raykd.inputs import InputFormat

# The distillation objectives and mixes raykd.distill.losses implements (its formula table says what each is).
Objective = Literal["soft_ce", "forward_kl", "reverse_kl", "skew_kl", "skew_reverse_kl"]
Mix = Literal["convex", "additive"]


@config
class StudentConfig:
    """A student architecture. `lstm` follows arXiv 2312.15842; `moe` is the multi-task MoE student; `pair` reads
    the response against its reference answers (raykd.students.pair: for questions the student never saw).
    per_task: one student per task (e.g. per ASAP-SAS set) instead of one for all tasks."""

    arch: Literal["lstm", "moe", "pair"] = "lstm"
    per_task: Bool = True
    tokenizer: Literal["words", "wordpiece"] = "words"
    # teacher: start the embedding from the teacher's token embeddings, reduced to embed_dim (needs the
    # teacher's sub-words: tokenizer wordpiece; raykd.students.embeddings)
    init_embeddings: Literal["random", "teacher"] = "random"
    include_question: Bool = False  # read question, reference answers and response (raykd.inputs)
    overlap: Bool = False  # start the input with answer/reference overlap tokens (raykd.inputs)
    vocab_size: Int = 3000
    min_freq: PositiveInt = 2
    max_len: PositiveInt = 128
    embed_dim: PositiveInt = 16
    hidden: PositiveInt = 32
    layers: PositiveInt = 1
    bidirectional: Bool = True
    dropout: Fraction = 0.3
    num_experts: PositiveInt = 4
    expert_hidden: PositiveInt = 64
    task_embed_dim: PositiveInt = 8

    @property
    def pair(self) -> bool:
        return self.arch == "pair"

    @property
    def inputs(self) -> InputFormat:
        return InputFormat(self.include_question, self.overlap, self.pair)

    @rules
    def _rules(self) -> None:
        if self.vocab_size < 3:
            raise rule("vocab_size", f"must be at least 3 (padding, unknown, one word), got {self.vocab_size}")
        if self.pair and self.include_question:
            raise rule("include_question", "the pair student always reads the response against the reference "
                                           "answers (else the question): leave it false")
        if self.init_embeddings == "teacher" and self.tokenizer != "wordpiece":
            raise rule("init_embeddings", "teacher embeddings need the teacher's sub-words: set tokenizer: wordpiece")


@config
class DistillConfig:
    """How a student learns. kd_weight is lambda: 0 trains on gold labels only (the no-KD baseline)."""

    kd_weight: NonNegativeNumber = 0.5
    mix: Mix = "convex"
    objective: Objective = "soft_ce"
    temperature: PositiveNumber = 2.0
    skew_alpha: PositiveNumber = 0.1
    load_balance_weight: NonNegativeNumber = 0.01
    use_unlabelled: Bool = True  # teacher-labelled unscored responses join training (soft term only)
    epochs: PositiveInt = 20
    patience: PositiveInt = 3
    batch_size: PositiveInt = 32
    lr: PositiveNumber = 3e-3
    weight_decay: NonNegativeNumber = 0.0
    seed: Int = 0
    threads: PositiveInt = 1  # torch threads per student fit (Tune runs several side by side)
    # Calibration, conformal level and review policy saved with the student (raykd.confidence)
    review: ReviewConfig = field(default_factory=ReviewConfig)

    @rules
    def _rules(self) -> None:
        if self.mix == "convex" and self.kd_weight > 1:
            raise rule("kd_weight", "must be in [0, 1] for the convex mix (>= 0 for additive)")
        if self.skew_alpha >= 1:
            raise rule("skew_alpha", "must be in (0, 1)")


@config
class DistillJobConfig:
    name: Str = "distill"
    output_dir: Location = "runs/distill"
    teacher: Location = "runs/teacher"  # a teacher job's output folder (model/, soft_labels.parquet)
    data: DataConfig | None = None  # default: the data the teacher prepared (raykd.data.preparation)
    students: dict[str, StudentConfig] = field(default_factory=lambda: {"lstm": StudentConfig()})
    distill: DistillConfig = field(default_factory=DistillConfig)
    baseline: Bool = True  # also train each student with kd_weight = 0
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    @rules
    def _rules(self) -> None:
        if not self.students:
            raise rule("students", "name at least one student")
