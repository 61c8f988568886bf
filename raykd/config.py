"""Configs as data: YAML files loaded into pydantic dataclasses that validate however they are built.

Each stage's config lives beside its stage (`raykd/<stage>/config.py`) and is declared with `@config`: types,
ranges (`Field` constraints and the constrained scalars below) and cross-field rules (`@rules`, raising `rule`)
sit on the class, so a config made in code, from a mapping (`from_dict`), from a file (`load_config`) or with
`--set key.path=value` overrides is checked the same way, and every error names its key path
(`teacher.yaml: train.lr: expected a number, got 'fast'`). This module holds what every stage shares: the
scalar types, the loading and the wording of errors, and the sections several stages use.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Callable
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic.dataclasses import dataclass as _pydantic_dataclass
from pydantic_core import PydanticCustomError

from raykd.errors import ConfigError

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
# The ranges most keys need, declared once.
PositiveInt = Annotated[Int, Field(ge=1)]
NonNegativeInt = Annotated[Int, Field(ge=0)]
PositiveNumber = Annotated[Number, Field(gt=0)]
NonNegativeNumber = Annotated[Number, Field(ge=0)]
Fraction = Annotated[Number, Field(ge=0, lt=1)]  # a share of the data, e.g. a validation split


def _location(value: str) -> str:
    from raykd.storage import location_problem

    problem = location_problem(value)
    if problem:
        raise PydanticCustomError("raykd_location", "{reason}", {"reason": problem})
    return value


# Where a stage keeps its outputs, or reads an earlier stage's: a folder or an object store (raykd.storage).
Location = Annotated[Str, AfterValidator(_location)]

STRICT = ConfigDict(extra="forbid")  # every config class: unknown keys are errors


def config(cls: type[T]) -> type[T]:
    """A config class: a pydantic dataclass with unknown keys refused, validated whenever it is built. Built in
    code (`DistillConfig(kd_weight=2)`, `dataclasses.replace`), a broken value is the same ConfigError as from
    a file, named from the class (`DistillConfig.kd_weight: ...`)."""
    built = _pydantic_dataclass(config=STRICT)(cls)
    init = built.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            init(self, *args, **kwargs)
        except ValidationError as e:
            raise _config_error(built, built.__name__, _first(built, e)) from None

    __init__.__doc__ = init.__doc__
    built.__init__ = __init__  # type: ignore[method-assign]
    return built


def rules(fn: Callable[[Any], None]) -> Any:
    """A config class's cross-field rules: `fn(self)` raises `rule(...)` for the first one broken."""

    def check(self: Any) -> Any:
        fn(self)
        return self

    check.__name__ = fn.__name__
    check.__doc__ = fn.__doc__
    return model_validator(mode="after")(check)


def rule(key: str, reason: str) -> PydanticCustomError:
    """A broken cross-field rule at `key` (a field of the class it is raised in), worded as a ConfigError."""
    return PydanticCustomError("raykd_rule", "{key}: {reason}", {"key": key, "reason": reason})


# ------------------------------------------------------------------------------------------- shared sections
@config
class TrackingConfig:
    tracking_uri: Str | None = None  # default: sqlite:///<output_dir>/../mlflow.db
    experiment: Str = "raykd"
    run_name: Str | None = None


@config
class ScalingConfig:
    """Ray Train workers (the teachers' recipes)."""

    num_workers: PositiveInt = 2
    use_gpu: Bool = False
    cpus_per_worker: PositiveNumber = 0.5  # leave CPU room for the Ray Train controller on small machines
    gpus_per_worker: PositiveNumber = 1.0
    max_failures: NonNegativeInt = 2
    # Custom resources each worker needs (Ray's `resources_per_worker`): {"trainer": 1} puts the workers on the
    # nodes started with that resource (`ray start --resources`, the chart's worker group `rayStartParams`).
    resources_per_worker: dict[Str, PositiveNumber] = field(default_factory=dict)
    # How often the Train controller collects the workers' reports (Ray's RAY_TRAIN_HEALTH_CHECK_INTERVAL_S, 2 s
    # by default there). A report waits until the one before it is collected, so with Ray's default every epoch
    # shorter than 2 s took 2 s: a 10-epoch KT member spent 20 s of its 33 s waiting.
    report_poll_s: PositiveNumber = 0.25

    @rules
    def _rules(self) -> None:
        reserved = sorted(set(self.resources_per_worker) & {"CPU", "GPU", "memory"})
        if reserved:
            raise rule("resources_per_worker", f"{', '.join(reserved)}: give these as cpus_per_worker / "
                                               f"gpus_per_worker, not as custom resources")


@config
class ReviewConfig:
    """Scores a school can act on (raykd.confidence): the conformal score sets' coverage `level`, and which
    responses go to a person: the least confident `rate` of them, or as many as it takes for the rest to reach
    `target_agreement` (the task's primary metric: QWK for scores). Neither set: a rate of 0.3."""

    level: Annotated[Number, Field(gt=0, lt=1)] = 0.9
    rate: Annotated[Number, Field(ge=0, le=1)] | None = None
    target_agreement: Annotated[Number, Field(ge=-1, le=1)] | None = None

    @rules
    def _rules(self) -> None:
        if self.rate is not None and self.target_agreement is not None:
            raise rule("rate", "give a review rate or a target_agreement, not both")


# ------------------------------------------------------------------------------------------ loading
def _config_error(cls: type, where: str, error: dict[str, Any]) -> ConfigError:
    """A pydantic error as raykd words it: the key path, and what was expected instead of what was found."""
    loc = _key_path(cls, tuple(error["loc"]))
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
    if kind == "raykd_location":
        return ConfigError(path, error["ctx"]["reason"])
    if kind == "raykd_rule":
        key = error["ctx"]["key"]
        return ConfigError(f"{path}.{key}" if key else path, error["ctx"]["reason"])
    ctx = error.get("ctx") or {}
    bounds = [f"{word} {ctx[b]}" for b, word in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")) if b in ctx]
    if bounds and kind.startswith(("greater_than", "less_than")):
        return ConfigError(path, f"must be {' and '.join(bounds)}, got {given!r}")
    if kind in ("too_short", "too_long"):
        return ConfigError(path, error["msg"].replace("List", "list").replace("Dictionary", "mapping"))
    reasons = {"int_type": "an integer", "int_from_float": "an integer", "bool_type": "true/false",
               "string_type": "a string", "float_type": "a number", "value_error": "a number",
               "dataclass_type": "a mapping", "dict_type": "a mapping", "list_type": "a list",
               "tuple_type": "a list"}
    if kind in reasons:
        return ConfigError(path, f"expected {reasons[kind]}, got {given!r}")
    return ConfigError(path, error["msg"])


def _first(cls: type, e: ValidationError) -> dict[str, Any]:
    """The error to report: the first one, except under a union key (`hidden: 64 | [32, 64]`), where pydantic fails
    each member and the one that matched the value's kind (a range, not a type mismatch) says what is wrong."""
    errors = e.errors()
    head = _key_path(cls, tuple(errors[0]["loc"]))
    same_key = [x for x in errors if _key_path(cls, tuple(x["loc"]))[:len(head)] == head]
    return next((x for x in same_key if not x["type"].endswith("_type")), errors[0])


def _key_path(cls: Any, loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """A pydantic error location without the union-member tags it adds under a union key (`hidden: 64 | [32, 64]`
    fails at `hidden.constrained-int`): the path a user wrote."""
    out: list[Any] = []
    for part in loc:
        tp = _type_at(cls, tuple(out))
        members = [a for a in typing.get_args(tp) if a is not type(None)]
        if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(members) > 1 and isinstance(part, str):
            continue
        out.append(part)
    return tuple(out)


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
    """Build config class `cls` from a mapping, validated: unknown keys, wrong types, values out of range or
    outside a choice, and broken rules are ConfigErrors naming the key path."""
    try:
        return TypeAdapter(cls).validate_python(data)
    except ValidationError as e:
        raise _config_error(cls, where, _first(cls, e)) from None


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
    return from_dict(cls, data, where)
