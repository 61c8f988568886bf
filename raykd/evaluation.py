"""Per-task metrics of a model's probabilities against gold labels, with bootstrap intervals (no torch here)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from raykd import metrics
from raykd.data.dataset import CONTINUOUS, MULTICLASS, MULTILABEL, TaskSpec
from raykd.decoding import choose_decoding
from raykd.heads import TaskLayout, decide


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
    return report(y, decide(probs, spec, thresholds), spec)


def report(y: np.ndarray, pred: np.ndarray, spec: TaskSpec) -> dict[str, float]:
    """The task's metrics of decisions `pred` against gold labels `y` (continuous: scores as the model gives them,
    rounded to the task's step)."""
    if spec.kind == MULTICLASS:
        return metrics.multiclass_report(y, pred)
    if spec.kind == CONTINUOUS:
        return metrics.continuous_report(y, pred, spec.steps(y), spec.steps(pred))
    return metrics.multilabel_report(y, pred, spec.labels)


def tuned_decisions(probs: np.ndarray, y: np.ndarray, spec: TaskSpec) -> tuple[list[float] | None, np.ndarray]:
    """Decision thresholds fitted on these responses and the decisions to judge them by: per-label F1
    thresholds (multi-label); for an ordinal task, cut-points where cross-validation prefers them to argmax
    (raykd.decoding), judged by their cross-validated decisions so that fitting them on these responses does
    not flatter the score; None and argmax for other multi-class tasks; None and the rounded mean for
    continuous ones."""
    if spec.kind == MULTILABEL:
        thresholds = tune_thresholds(probs, y)
        return thresholds, decide(probs, spec, thresholds)
    if spec.kind == MULTICLASS and spec.ordinal:
        chosen = choose_decoding(probs, y)
        return chosen.cuts, chosen.held_out
    return None, decide(probs, spec)


def primary(spec: TaskSpec) -> str:
    return metrics.primary_metric(spec.kind, spec.ordinal)


@dataclass
class TaskScores:
    """Per-task metrics on one set of responses, the thresholds they used, and `score`: the mean over tasks of
    each task's primary metric (NaN when no task had a labelled response)."""

    tasks: dict[str, dict[str, float]]
    thresholds: dict[str, list[float]]
    score: float
    # Bootstrap 95% intervals of each task's primary metric and of `score` (when asked for: test evaluations).
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    score_interval: tuple[float, float] | None = None
    # Every interval computed, per task and metric: the primary one, and RMSE beside Pearson r for continuous tasks.
    metric_intervals: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)

    def flat(self, prefix: str = "") -> dict[str, float]:
        """`{prefix}{task}/{metric}` for every metric, and `{prefix}score`."""
        out = {f"{prefix}{task}/{k}": v for task, m in self.tasks.items() for k, v in m.items()}
        out[f"{prefix}score"] = self.score
        return out


def score_tasks(probs: Sequence[np.ndarray], tasks: Sequence[str], gold: Sequence[Any], layout: TaskLayout,
                thresholds: Mapping[str, Sequence[float]] | None = None, tune: bool = False,
                intervals: bool = False) -> TaskScores:
    """Metrics per task over the responses with a gold label (`gold[i]` None: skipped). `probs[i]` is response
    i's probability vector over its task's labels. Decision thresholds (multi-label thresholds, ordinal
    cut-points) come from `thresholds`, or are fitted here on these responses when `tune` (held-out responses
    only; `tuned_decisions`). With `intervals`, bootstrap 95% intervals of each
    task's primary metric and of the mean over tasks (responses resampled within their task)."""
    used = dict(thresholds or {})
    names = np.asarray(tasks)
    labelled = np.array([y is not None for y in gold], dtype=bool)
    per_task: dict[str, dict[str, float]] = {}
    primaries, pairs, ranges, every = [], [], {}, {}
    for spec in layout.tasks:
        rows = np.flatnonzero((names == spec.name) & labelled)
        if not len(rows):
            continue
        p = np.stack([probs[i] for i in rows])
        y = np.asarray([gold[i] for i in rows])
        if tune:
            fitted, pred = tuned_decisions(p, y, spec)
            used.pop(spec.name, None)
            if fitted is not None:
                used[spec.name] = fitted
        else:
            pred = decide(p, spec, used.get(spec.name))
        per_task[spec.name] = report(y, pred, spec)
        primaries.append(per_task[spec.name][primary(spec)])
        if intervals:
            shown = (primary(spec), "rmse") if spec.kind == CONTINUOUS else (primary(spec),)
            every[spec.name] = {m: metrics.bootstrap_interval(m, y, pred) for m in shown}
            ranges[spec.name] = every[spec.name][primary(spec)]
            pairs.append((y, pred, primary(spec)))
    mean_range = None
    if intervals and pairs and len({m for _, _, m in pairs}) == 1:  # one metric: a mean over tasks makes sense
        mean_range = metrics.bootstrap_mean_interval(pairs[0][2], [(y, p) for y, p, _ in pairs])
    return TaskScores(per_task, {k: list(v) for k, v in used.items()},
                      float(np.mean(primaries)) if primaries else float("nan"), ranges, mean_range, every)
