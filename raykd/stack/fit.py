"""Cross-fitting and the meta-model of a stacked teacher (no Ray here: raykd.stack.job runs `fit_base` per task
as a Ray task).

    folds    k folds over a task's labelled training responses (train and validation), stratified by score and
             grouped by text (or by question): identical texts share a fold, so no response meets itself
    base     every candidate learner (raykd.stack.learners) fitted on k-1 folds describes the k-th: out-of-fold
             features for every labelled response; fitted once on all of them, it describes every other
             response (test, unscored, new ones)
    select   forward selection over the learners, all tasks together: from none, add the learner that raises
             the mean cross-validated score most; stop when the best adds no more than `min_gain`; then the
             meta-model's regularisation from `meta_c` and `meta_c_grid`, by the same score
    meta     a standardised multinomial logistic model (one per label for multi-label tasks) on the selected
             learners' out-of-fold features. Its own out-of-fold probabilities are the labelled responses'
             cross-fitted soft labels and the data the decoding and calibration are fitted on; refitted on all
             of them, it scores every other response
The cross-validated score of a task is its primary metric (QWK for scores) of the meta-model's out-of-fold
probabilities, decided as the model will decide (raykd.evaluation.tuned_decisions: cut-points where they beat
argmax, per-label thresholds).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from raykd.data.dataset import MULTICLASS, TaskSpec
from raykd.evaluation import primary, report, tuned_decisions
from raykd.stack.config import StackConfig
from raykd.stack.learners import Learner, Rows, fit_classifier, make_learner, probabilities


def strata(spec: TaskSpec, y: np.ndarray) -> np.ndarray:
    """What folds are stratified by: the score, or the label combination of a multi-label task."""
    if spec.kind == MULTICLASS:
        return np.asarray(y, dtype=np.int64)
    _, codes = np.unique(np.asarray(y, dtype=np.int64), axis=0, return_inverse=True)
    return codes.ravel()


def task_folds(spec: TaskSpec, y: np.ndarray, groups: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold (0..k'-1) of each labelled response: stratified by score, grouped by `groups`; k' = k, or fewer
    when there are fewer groups."""
    from sklearn.model_selection import StratifiedGroupKFold

    k = min(k, len(np.unique(groups)))
    folds = np.zeros(len(y), dtype=np.int64)
    if k < 2:
        raise ValueError(f"task {spec.name!r}: cross-fitting needs at least 2 distinct labelled responses")
    import warnings

    with warnings.catch_warnings():  # a score rarer than k responses cannot be in every fold: said, not fatal
        warnings.simplefilter("ignore", UserWarning)
        splitter = StratifiedGroupKFold(k, shuffle=True, random_state=seed)
        for i, (_, held) in enumerate(splitter.split(np.zeros(len(y)), strata(spec, y), groups)):
            folds[held] = i
    return folds


@dataclass
class TaskBase:
    """Every candidate learner of one task: out-of-fold features of the labelled training responses (`oof`),
    features of every response of the task from the learner fitted on all of those (`final`: in-sample for
    them), and that fitted learner."""

    task: str
    pool: np.ndarray  # positions (in the task's rows) of the labelled training responses
    folds: np.ndarray  # fold of each pool response
    y: np.ndarray  # gold label of each pool response
    oof: dict[str, np.ndarray]
    final: dict[str, np.ndarray]
    learners: dict[str, Learner]
    seconds: dict[str, float] = field(default_factory=dict)


def fit_base(spec: TaskSpec, rows: Rows, y: np.ndarray, pool: np.ndarray, folds: np.ndarray, names: list[str],
             cfg: StackConfig) -> TaskBase:
    """Cross-fit every learner in `names` on the task's responses `rows`; `y` holds the labels of `pool`."""
    oof, final, learners, seconds = {}, {}, {}, {}
    held_rows = rows.take(pool)
    for name in names:
        t0 = time.time()
        blocks: list[tuple[np.ndarray, np.ndarray]] = []
        for f in np.unique(folds):
            fit_rows, held = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
            learner = make_learner(name, spec, cfg).fit(held_rows.take(fit_rows), y[fit_rows])
            blocks.append((held, learner.features(held_rows.take(held))))
        width = blocks[0][1].shape[1]
        oof[name] = np.zeros((len(pool), width))
        for held, block in blocks:
            oof[name][held] = block
        learners[name] = make_learner(name, spec, cfg).fit(held_rows, y)
        final[name] = learners[name].features(rows)
        seconds[name] = time.time() - t0
    return TaskBase(spec.name, pool, folds, y, oof, final, learners, seconds)


def meta_model(spec: TaskSpec, x: np.ndarray, y: np.ndarray, c: float) -> Any:
    return fit_classifier(spec, c, x, y, scale=True)


def meta_oof(spec: TaskSpec, x: np.ndarray, y: np.ndarray, folds: np.ndarray, c: float) -> np.ndarray:
    """The meta-model's out-of-fold probabilities (rows, K)."""
    out = np.zeros((len(y), spec.num_outputs))
    for f in np.unique(folds):
        fit_rows, held = folds != f, folds == f
        out[held] = probabilities(meta_model(spec, x[fit_rows], y[fit_rows], c), spec, x[held])
    return out


def cv_score(spec: TaskSpec, probs: np.ndarray, y: np.ndarray) -> float:
    """The task's primary metric of out-of-fold probabilities, decided as the saved model will decide."""
    _, pred = tuned_decisions(probs, y, spec)
    return report(y, pred, spec)[primary(spec)]


def stacked(base: TaskBase, names: list[str], which: str = "oof") -> np.ndarray:
    blocks = base.oof if which == "oof" else base.final
    return np.hstack([blocks[n] for n in names])


@dataclass
class Selection:
    """The learners kept, and the mean cross-validated score after each was added (in order), with the best
    single-learner scores for the record; the meta-model's regularisation chosen for them, and the score of
    each value tried."""

    chosen: list[str]
    steps: list[tuple[str, float]]
    alone: dict[str, float]
    meta_c: float = 0.0
    by_c: dict[str, float] = field(default_factory=dict)


def select(bases: list[TaskBase], specs: dict[str, TaskSpec], names: list[str], cfg: StackConfig) -> Selection:
    """Forward selection over `names` by the mean cross-validated score over tasks, then the meta-model's
    regularisation (see the module docstring); without `cfg.select`, every learner."""
    cache: dict[tuple[tuple[str, ...], float], float] = {}

    def score(chosen: list[str], c: float = cfg.meta_c) -> float:
        key = (tuple(sorted(chosen)), c)
        if key not in cache:
            cache[key] = float(np.mean([cv_score(specs[b.task], meta_oof(specs[b.task], stacked(b, chosen), b.y,
                                                                         b.folds, c), b.y)
                                        for b in bases]))
        return cache[key]

    alone = {n: score([n]) for n in names}
    chosen: list[str] = []
    steps: list[tuple[str, float]] = []
    if not cfg.select:
        chosen, steps = list(names), [(n, score(names[:i + 1])) for i, n in enumerate(names)]
    current = -np.inf
    while cfg.select and len(chosen) < len(names):
        trials = {n: score([*chosen, n]) for n in names if n not in chosen}
        best = max(trials, key=lambda n: (trials[n], -names.index(n)))
        if chosen and trials[best] - current <= cfg.min_gain:
            break
        chosen.append(best)
        steps.append((best, trials[best]))
        current = trials[best]
    by_c = {str(c): score(chosen, c) for c in dict.fromkeys([cfg.meta_c, *cfg.meta_c_grid])}
    best_c = max(by_c, key=lambda c: (by_c[c], c == str(cfg.meta_c)))
    return Selection(chosen, steps, alone, float(best_c), by_c)


@dataclass
class TaskStack:
    """One task's fitted stack: its learners (fitted on every labelled training response) and the meta-model."""

    spec: TaskSpec
    learners: list[Learner]
    meta: Any

    def predict_proba(self, rows: Rows) -> np.ndarray:
        x = np.hstack([learner.features(rows) for learner in self.learners])
        return probabilities(self.meta, self.spec, x)

    @property
    def coefficients(self) -> int:
        from raykd.stack.learners import _coefficients

        return sum(learner.coefficients for learner in self.learners) + _coefficients(self.meta)


@dataclass
class TaskFit:
    """A task's stack and its probabilities: cross-fitted for the labelled training responses (`oof`, in pool
    order) and from the refitted stack for every response of the task (`final`: in-sample for the pool)."""

    stack: TaskStack
    oof: np.ndarray
    final: np.ndarray
    cv_score: float


def fit_meta(spec: TaskSpec, base: TaskBase, chosen: list[str], c: float) -> TaskFit:
    x = stacked(base, chosen)
    oof = meta_oof(spec, x, base.y, base.folds, c)
    meta = meta_model(spec, x, base.y, c)
    final = probabilities(meta, spec, stacked(base, chosen, "final"))
    return TaskFit(TaskStack(spec, [base.learners[n] for n in chosen], meta), oof, final, cv_score(spec, oof, base.y))
