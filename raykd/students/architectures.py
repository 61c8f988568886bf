"""The student architectures by name: the one place a config or a saved manifest becomes a network.

A new architecture is a module with a `Spec` dataclass and an `nn.Module` taking it (see lstm.py, moe.py),
registered here; a `StudentConfig` field of the same name as a spec field sets it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from raykd.distill.config import StudentConfig
from raykd.students.lstm import LSTMSpec, LSTMStudent
from raykd.students.moe import MoESpec, MoEStudent
from raykd.students.pair import PairSpec, PairStudent
from raykd.tasks import TaskLayout

ARCHITECTURES: dict[str, tuple[type, type[nn.Module]]] = {"lstm": (LSTMSpec, LSTMStudent), "moe": (MoESpec, MoEStudent),
                                                           "pair": (PairSpec, PairStudent)}


def build_student(arch: str, spec: dict[str, Any]) -> nn.Module:
    """The network of architecture `arch` from its spec (as saved in a student's manifest)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown student architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}")
    spec_cls, module = ARCHITECTURES[arch]
    return module(spec_cls(**spec))


def spec_for(cfg: StudentConfig, vocab_size: int, layout: TaskLayout) -> dict[str, Any]:
    """The spec of `cfg.arch` for a vocabulary and a task layout, sizes taken from the config by field name."""
    spec_cls, _ = ARCHITECTURES[cfg.arch]
    given = {"vocab_size": vocab_size, "num_outputs": layout.total, "num_tasks": len(layout.tasks)}
    names = {f.name for f in dataclasses.fields(spec_cls)}
    return {n: given[n] if n in given else getattr(cfg, n) for n in names if n in given or hasattr(cfg, n)}


def make_model(cfg: StudentConfig, vocab_size: int, layout: TaskLayout) -> nn.Module:
    return build_student(cfg.arch, spec_for(cfg, vocab_size, layout))
