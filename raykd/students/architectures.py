"""The student architectures by name: the one place a config or a saved manifest becomes a network.

A new architecture is a module with a `Spec` dataclass and an `nn.Module` built from it (see lstm.py, moe.py),
registered here; a `StudentConfig` field of the same name as a spec field sets it. The learner simulator's DKT
(raykd.kt.models) is registered here too, so scorers and simulators build their students the same way.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from raykd.distill.config import StudentConfig
from raykd.heads import TaskLayout
from raykd.kt.models import DKT, DKTSpec
from raykd.students.lstm import LSTMSpec, LSTMStudent
from raykd.students.moe import MoESpec, MoEStudent
from raykd.students.pair import PairSpec, PairStudent


def _dkt(spec: DKTSpec) -> nn.Module:
    return DKT(spec.num_skills, spec.embed, spec.hidden, spec.dropout)


ARCHITECTURES: dict[str, tuple[type, Any]] = {"lstm": (LSTMSpec, LSTMStudent), "moe": (MoESpec, MoEStudent),
                                              "pair": (PairSpec, PairStudent), "dkt": (DKTSpec, _dkt)}


def build_student(arch: str, spec: dict[str, Any]) -> nn.Module:
    """The network of architecture `arch` from its spec (as saved in a student's manifest); keys the spec does
    not have are ignored, so a whole saved config can be passed."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown student architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}")
    spec_cls, build = ARCHITECTURES[arch]
    names = {f.name for f in dataclasses.fields(spec_cls)}
    return build(spec_cls(**{k: v for k, v in spec.items() if k in names}))


def spec_for(cfg: StudentConfig, vocab_size: int, layout: TaskLayout) -> dict[str, Any]:
    """The spec of `cfg.arch` for a vocabulary and a task layout, sizes taken from the config by field name."""
    spec_cls, _ = ARCHITECTURES[cfg.arch]
    given = {"vocab_size": vocab_size, "num_outputs": layout.total, "num_tasks": len(layout.tasks)}
    names = {f.name for f in dataclasses.fields(spec_cls)}
    return {n: given[n] if n in given else getattr(cfg, n) for n in names if n in given or hasattr(cfg, n)}


def make_model(cfg: StudentConfig, vocab_size: int, layout: TaskLayout) -> nn.Module:
    return build_student(cfg.arch, spec_for(cfg, vocab_size, layout))
