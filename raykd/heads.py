"""Multi-task outputs shared by teacher and students.

A model scores many rubric tasks through one flat output vector: each task owns a contiguous slice of it
(`TaskLayout`). Multi-class tasks read their slice through softmax, multi-label tasks through per-label
sigmoids. This module turns logits into probabilities, decisions and per-task metrics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from raykd import metrics
from raykd.data.dataset import MULTICLASS, TaskSpec


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


def task_logits(logits: torch.Tensor, spec: TaskSpec, layout: TaskLayout) -> torch.Tensor:
    return logits[..., layout.span(spec.name)]


def probabilities(logits: torch.Tensor, spec: TaskSpec, temperature: float = 1.0) -> torch.Tensor:
    """Softmax over a multi-class task's logits, or independent sigmoids for a multi-label task."""
    z = logits / temperature
    return F.softmax(z, dim=-1) if spec.kind == MULTICLASS else torch.sigmoid(z)


def hard_loss(logits: torch.Tensor, target: torch.Tensor, spec: TaskSpec,
              pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy against gold: softmax CE (class index) or per-label BCE (0/1 matrix)."""
    if spec.kind == MULTICLASS:
        return F.cross_entropy(logits, target.long())
    return F.binary_cross_entropy_with_logits(logits, target.float(), pos_weight=pos_weight)


def decide(probs: np.ndarray, spec: TaskSpec, thresholds: Sequence[float] | None = None) -> np.ndarray:
    """Class index (argmax) for multi-class; 0/1 per label against thresholds for multi-label."""
    if spec.kind == MULTICLASS:
        return probs.argmax(axis=-1)
    t = np.asarray(thresholds if thresholds is not None else [0.5] * spec.num_outputs)
    return (probs >= t).astype(np.int64)


def tune_thresholds(probs: np.ndarray, y: np.ndarray, grid: Sequence[float] | None = None) -> list[float]:
    """Per-label threshold that maximises that label's F1 on validation (ties go to the value nearest 0.5)."""
    from sklearn.metrics import f1_score

    grid = grid if grid is not None else np.round(np.arange(0.05, 0.96, 0.05), 2)
    out = []
    for j in range(y.shape[1]):
        scores = [(f1_score(y[:, j], probs[:, j] >= t, zero_division=0), -abs(t - 0.5), t) for t in grid]
        out.append(float(max(scores)[2]))
    return out


def evaluate(probs: np.ndarray, y: np.ndarray, spec: TaskSpec,
             thresholds: Sequence[float] | None = None) -> dict[str, float]:
    pred = decide(probs, spec, thresholds)
    if spec.kind == MULTICLASS:
        return metrics.multiclass_report(y, pred)
    return metrics.multilabel_report(y, pred, spec.labels)


def primary(spec: TaskSpec) -> str:
    return metrics.primary_metric(spec.kind, spec.ordinal)
