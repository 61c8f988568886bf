"""Next-step AUC of a knowledge-tracing model, with a bootstrap interval over learners."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from raykd.kt.data import Sequence
from raykd.metrics import percentile_interval, resamples


def auc(seqs: list[Sequence], probs: list[np.ndarray]) -> float:
    """ROC AUC of the next-step probabilities (attempts 2..n of every sequence) against the real answers."""
    return float(roc_auc_score(np.concatenate([s.correct[1:] for s in seqs]), np.concatenate(probs)))


def auc_interval(seqs: list[Sequence], probs: list[np.ndarray], n: int = 200, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval, resampling whole sequences (a learner's answers are not independent);
    resamples with only one kind of answer have no AUC and are left out."""
    y = [s.correct[1:] for s in seqs]
    values = []
    for pick in resamples(np.random.default_rng(seed), len(seqs), n):
        yy = np.concatenate([y[i] for i in pick])
        if 0 < yy.mean() < 1:
            values.append(roc_auc_score(yy, np.concatenate([probs[i] for i in pick])))
    return percentile_interval(values, level)
