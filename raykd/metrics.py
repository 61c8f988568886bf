"""Scoring metrics from scikit-learn, and percentile bootstrap intervals.

Multi-class: accuracy, macro-F1, Cohen's kappa and quadratic weighted kappa (QWK, the ASAP-SAS measure).
Multi-label: per-label F1, micro/macro-F1 and exact match (subset accuracy). Continuous: Pearson r, RMSE and
QWK of the scores rounded to the task's steps. Intervals resample responses
(or, through `resamples` and `percentile_interval`, whole learners); a multi-class interval computes its 1,000
resamples' QWK / macro-F1 / accuracy at once from their confusion matrices (`batched`), with scikit-learn's
formulas (tests check they agree resample by resample): one scikit-learn call per resample costs 1.7 ms here,
so 1.7 s per interval.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.stats import pearsonr
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score, root_mean_squared_error


def accuracy(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    return float(accuracy_score(y_true, y_pred))


def macro_f1(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    return float(f1_score(y_true, y_pred, average="macro", zero_division=0))


def cohen_kappa(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    return _kappa(y_true, y_pred, None)


def qwk(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """Quadratic weighted kappa."""
    return _kappa(y_true, y_pred, "quadratic")


def _kappa(y_true: Sequence[int], y_pred: Sequence[int], weights: str | None) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    # sklearn returns nan when both raters use one identical class; agreement is then perfect.
    if len(np.union1d(y_true, y_pred)) == 1:
        return 1.0
    return float(cohen_kappa_score(y_true, y_pred, weights=weights))


def per_label_f1(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> dict[str, float]:
    scores = f1_score(np.asarray(y_true), np.asarray(y_pred), average=None, zero_division=0)
    return {name: float(s) for name, s in zip(labels, np.atleast_1d(scores), strict=True)}


def exact_match(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(accuracy_score(np.asarray(y_true), np.asarray(y_pred)))


def multiclass_report(y_true: Sequence[int], y_pred: Sequence[int]) -> dict[str, float]:
    return {
        "accuracy": accuracy(y_true, y_pred),
        "macro_f1": macro_f1(y_true, y_pred),
        "kappa": cohen_kappa(y_true, y_pred),
        "qwk": qwk(y_true, y_pred),
    }


def multilabel_report(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> dict[str, float]:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    out = {
        "micro_f1": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "exact_match": exact_match(y_true, y_pred),
    }
    out.update({f"f1_{k}": v for k, v in per_label_f1(y_true, y_pred, labels).items()})
    return out


def pearson(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """Pearson's r; 0 where either side is constant (no linear agreement can be measured)."""
    y_true, y_pred = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    if len(y_true) < 2 or np.ptp(y_true) == 0 or np.ptp(y_pred) == 0:
        return 0.0
    return float(pearsonr(y_true, y_pred).statistic)


def rmse(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    return float(root_mean_squared_error(y_true, y_pred))


def continuous_report(y_true: Sequence[float], y_pred: Sequence[float], steps_true: Sequence[int],
                      steps_pred: Sequence[int]) -> dict[str, float]:
    """Scores against gold scores (Pearson r, RMSE), and QWK of both rounded to the task's steps."""
    return {"pearson": pearson(y_true, y_pred), "rmse": rmse(y_true, y_pred), "qwk": qwk(steps_true, steps_pred)}


def metric_fn(name: str) -> Callable[[np.ndarray, np.ndarray], float]:
    """The function behind a primary metric's name."""
    return {"qwk": qwk, "macro_f1": macro_f1, "accuracy": accuracy, "pearson": pearson}[name]


def primary_metric(kind: str, ordinal: bool) -> str:
    """The metric a task is judged by: QWK for ordinal scores, Pearson r for continuous ones, macro-F1 otherwise."""
    if kind == "continuous":
        return "pearson"
    return "qwk" if kind == "multiclass" and ordinal else "macro_f1"


CONTINUOUS_METRICS = ("pearson", "rmse")
# How a report or plot names a metric.
METRIC_NAMES = {"qwk": "QWK", "macro_f1": "macro-F1", "accuracy": "accuracy", "pearson": "Pearson r", "rmse": "RMSE"}


def batched_continuous(name: str, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Pearson r (0 where a side is constant, as `pearson`) or RMSE of each row pair of (B, n) resamples."""
    if name == "rmse":
        return np.sqrt(((y_true - y_pred) ** 2).mean(1))
    if name != "pearson":
        raise ValueError(f"no batched continuous form of {name!r}")
    a = y_true - y_true.mean(1, keepdims=True)
    b = y_pred - y_pred.mean(1, keepdims=True)
    denom = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (a * b).sum(1) / denom, 0.0)


def confusions(y_true: np.ndarray, y_pred: np.ndarray, samples: np.ndarray, k: int) -> np.ndarray:
    """Confusion matrices (B, k, k) of B resamples at once; `samples` holds each resample's row indices."""
    b = np.repeat(np.arange(len(samples)), samples.shape[1])
    cells = b * k * k + y_true[samples].ravel() * k + y_pred[samples].ravel()
    return np.bincount(cells, minlength=len(samples) * k * k).reshape(len(samples), k, k).astype(np.float64)


def batched(name: str, cm: np.ndarray) -> np.ndarray:
    """A metric of each confusion matrix in `cm` (B, k, k), as scikit-learn computes it from the labels:
    quadratic weighted kappa (1 when both raters use one identical class), macro-F1 over the classes present
    in either rater (0 where undefined), accuracy."""
    n = cm.sum((1, 2))
    if name == "accuracy":
        return np.trace(cm, axis1=1, axis2=2) / n
    rows, cols = cm.sum(2), cm.sum(1)
    if name == "qwk":
        # scikit-learn weighs by position among the labels present in either rater, per resample.
        present = (rows > 0) | (cols > 0)
        rank = np.cumsum(present, axis=1) - 1
        w = (rank[:, :, None] - rank[:, None, :]) ** 2
        expected = rows[:, :, None] * cols[:, None, :] / n[:, None, None]
        observed_w, expected_w = (w * cm).sum((1, 2)), (w * expected).sum((1, 2))
        single = present.sum(1) == 1
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(single, 1.0, 1 - observed_w / expected_w)
    if name == "macro_f1":
        tp = np.diagonal(cm, axis1=1, axis2=2)
        denom = rows + cols
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.where(denom > 0, 2 * tp / denom, 0.0)
        present = denom > 0
        return (f1 * present).sum(1) / present.sum(1)
    raise ValueError(f"no batched form of {name!r}")


def resamples(rng: np.random.Generator, units: int, n: int) -> np.ndarray:
    """`n` bootstrap resamples (rows of indices, drawn with replacement) of `units` items."""
    return rng.integers(0, units, size=(n, units))


def percentile_interval(values: Sequence[float] | np.ndarray, level: float = 0.95) -> tuple[float, float]:
    low, high = np.percentile(np.asarray(values), [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(low), float(high)


def bootstrap_interval(name: str, y_true: Sequence[Any], y_pred: Sequence[Any], n: int = 1000,
                       level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of metric `name` over resampled responses (seeded)."""
    return bootstrap_mean_interval(name, [(y_true, y_pred)], n, level, seed)


def bootstrap_mean_interval(name: str, groups: Sequence[tuple[Sequence[Any], Sequence[Any]]], n: int = 1000,
                            level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Interval of the mean of metric `name` over several tasks, each task's responses resampled within it.
    Class labels are integer indices (multi-class); continuous scores go with Pearson r or RMSE; multi-label
    matrices are resampled one by one."""
    rng = np.random.default_rng(seed)
    totals = np.zeros(n)
    for t, p in groups:
        t, p = np.asarray(t), np.asarray(p)
        samples = resamples(rng, len(t), n)
        if name in CONTINUOUS_METRICS:
            totals += batched_continuous(name, t.astype(np.float64)[samples], p.astype(np.float64)[samples])
        elif t.ndim == 1:
            k = int(max(t.max(), p.max())) + 1
            totals += batched(name, confusions(t.astype(np.int64), p.astype(np.int64), samples, k))
        else:
            fn = metric_fn(name)
            totals += np.array([fn(t[idx], p[idx]) for idx in samples])
    return percentile_interval(totals / len(groups), level)
