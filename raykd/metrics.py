"""Scoring metrics, all from scikit-learn.

Multi-class: accuracy, macro-F1, Cohen's kappa and quadratic weighted kappa (QWK, the ASAP-SAS measure).
Multi-label: per-label F1, micro/macro-F1 and exact match (subset accuracy).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score


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


def primary_metric(kind: str, ordinal: bool) -> str:
    """The metric a task is judged by: QWK for ordinal scores, macro-F1 otherwise."""
    return "qwk" if kind == "multiclass" and ordinal else "macro_f1"
