"""How a model lays out its outputs for many rubric tasks, and how outputs become decisions (no torch here).

A model scores many rubric tasks through one flat output vector: each task owns a contiguous slice of it
(`TaskLayout`). Multi-class tasks read their slice through softmax, multi-label tasks through per-label
sigmoids; `decide` turns probabilities into a class or the labels that apply. An ordinal task's decision
thresholds, where a model has them, are cut-points on the expected score (raykd.decoding).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import expit, softmax

from raykd.data.dataset import MULTICLASS, TaskSpec
from raykd.decoding import decode


@dataclass(frozen=True)
class TaskLayout:
    tasks: tuple[TaskSpec, ...]

    @classmethod
    def of(cls, tasks: Mapping[str, TaskSpec] | Sequence[TaskSpec]) -> TaskLayout:
        specs = list(tasks.values()) if isinstance(tasks, Mapping) else list(tasks)
        return cls(tuple(sorted(specs, key=lambda t: t.name)))

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tasks]

    @property
    def total(self) -> int:
        return sum(t.num_outputs for t in self.tasks)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def span(self, name: str) -> slice:
        start = 0
        for t in self.tasks:
            if t.name == name:
                return slice(start, start + t.num_outputs)
            start += t.num_outputs
        raise KeyError(name)

    def spec(self, name: str) -> TaskSpec:
        return self.tasks[self.index(name)]

    def to_list(self) -> list[dict]:
        return [t.to_dict() for t in self.tasks]

    @classmethod
    def from_list(cls, items: Sequence[dict]) -> TaskLayout:
        return cls(tuple(TaskSpec.from_dict(d) for d in items))


def probabilities(logits: np.ndarray, spec: TaskSpec, temperature: float = 1.0) -> np.ndarray:
    """Softmax over a multi-class task's logits (last axis), or independent sigmoids for a multi-label task."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    return (softmax(z, axis=-1) if spec.kind == MULTICLASS else expit(z)).astype(np.float32)


def decide(probs: np.ndarray, spec: TaskSpec, thresholds: Sequence[float] | None = None) -> np.ndarray:
    """Class index for multi-class (argmax; for an ordinal task with cut-points in `thresholds`, the expected
    score cut by them); 0/1 per label against thresholds for multi-label."""
    if spec.kind == MULTICLASS:
        if spec.ordinal and thresholds:
            if len(thresholds) != spec.num_outputs - 1:
                raise ValueError(f"task {spec.name!r}: {len(thresholds)} cut-points for {spec.num_outputs} scores")
            return decode(probs, thresholds)
        return probs.argmax(axis=-1)
    t = np.asarray(thresholds if thresholds is not None else [0.5] * spec.num_outputs)
    return (probs >= t).astype(np.int64)


def row_probabilities(logits: np.ndarray, tasks: Sequence[str], layout: TaskLayout) -> list[np.ndarray]:
    """Each row's probability vector over its own task's labels, from rows of the flat output."""
    out: list[np.ndarray] = [None] * len(tasks)  # type: ignore[list-item]
    names = np.asarray(tasks)
    for spec in layout.tasks:
        rows = np.flatnonzero(names == spec.name)
        if len(rows):
            for i, p in zip(rows, probabilities(logits[rows][:, layout.span(spec.name)], spec), strict=True):
                out[i] = p
    return out
