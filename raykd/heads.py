"""How a model lays out its outputs for many rubric tasks, and how outputs become decisions (no torch here).

A model scores many rubric tasks through one flat output vector: each task owns a contiguous slice of it
(`TaskLayout`). Multi-class tasks read their slice through softmax, multi-label tasks through per-label
sigmoids; `decide` turns probabilities into a class or the labels that apply. An ordinal task's decision
thresholds, where a model has them, are cut-points on the expected score (raykd.decoding).

A continuous task owns two outputs, z = (z_mean, z_sd), learnt in units of its range w = high - low:

    mean = low + w * z_mean          sd = w * exp(clip(z_sd, -LOG_SD_CLIP, LOG_SD_CLIP))

Its "probability vector" is (mean, sd) in score units, and its decision is the mean clipped to the range and
rounded to the task's step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import expit, softmax

from raykd.data.dataset import CONTINUOUS, MULTICLASS, TaskSpec
from raykd.decoding import decode

LOG_SD_CLIP = 10.0  # exp(10) ranges: a spread far beyond any range, and no overflow


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
    """Softmax over a multi-class task's logits (last axis), or independent sigmoids for a multi-label task; a
    continuous task's (mean, sd) in score units (no temperature: its calibration scales the sd)."""
    if spec.kind == CONTINUOUS:
        return gaussian(logits, spec).astype(np.float32)
    z = np.asarray(logits, dtype=np.float64) / temperature
    return (softmax(z, axis=-1) if spec.kind == MULTICLASS else expit(z)).astype(np.float32)


def gaussian(logits: np.ndarray, spec: TaskSpec) -> np.ndarray:
    """A continuous task's (mean, sd) in score units from its two outputs (the module docstring)."""
    z = np.asarray(logits, dtype=np.float64)
    return np.stack([spec.low + spec.width * z[..., 0],
                     spec.width * np.exp(np.clip(z[..., 1], -LOG_SD_CLIP, LOG_SD_CLIP))], axis=-1)


def unit_scale(values: np.ndarray, spec: TaskSpec) -> np.ndarray:
    """Gold scores (a vector) or teacher (mean, sd) rows of a continuous task in units of its range, the scale
    its outputs learn in: (y - low) / w, and (mean - low) / w, sd / w. Other kinds pass through."""
    v = np.asarray(values, dtype=np.float32 if spec.kind == CONTINUOUS else None)
    if spec.kind != CONTINUOUS:
        return v
    if v.ndim == 1:
        return (v - spec.low) / spec.width
    return np.stack([(v[:, 0] - spec.low) / spec.width, v[:, 1] / spec.width], axis=-1).astype(np.float32)


def continuous_start(layout: TaskLayout, tasks: Sequence[str], gold: Sequence[object]) -> dict[int, float]:
    """Output index -> the bias a fresh head starts from, for each continuous task with gold scores: z_mean at
    the training scores' mean and z_sd at their spread, in units of the range. A head starting at zero predicts
    the bottom of the range, and a fine-tuned teacher spends its few epochs walking up to the average score."""
    start: dict[int, float] = {}
    tasks, gold = np.asarray(tasks, dtype=object), np.asarray(gold, dtype=object)
    for spec in layout.tasks:
        if spec.kind != CONTINUOUS:
            continue
        ys = np.asarray([y for y in gold[tasks == spec.name] if y is not None and y == y], dtype=np.float64)
        if len(ys) < 2:
            continue
        z = unit_scale(ys, spec)
        first = layout.span(spec.name).start
        start[first] = float(z.mean())
        start[first + 1] = float(np.log(max(float(z.std()), 1e-3)))
    return start


def decide(probs: np.ndarray, spec: TaskSpec, thresholds: Sequence[float] | None = None) -> np.ndarray:
    """Class index for multi-class (argmax; for an ordinal task with cut-points in `thresholds`, the expected
    score cut by them); 0/1 per label against thresholds for multi-label; for a continuous task the mean,
    clipped and rounded to its step."""
    if spec.kind == CONTINUOUS:
        return spec.snap(np.asarray(probs)[..., 0])  # snap clips to the range
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
