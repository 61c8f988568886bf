"""Scores a school can act on: calibrated probabilities, a conformal score set, and which responses a person
should review (numpy and scipy only; no torch here).

Fitted per task on calibration data a model has not trained on (out-of-fold predictions of a cross-validated
student, else the validation split), saved beside the model as `calibration.json`, applied when scoring:

    temperature  T* = argmin_T  -1/n sum_i log softmax(log p_i / T)[y_i]      multi-class
                 T* = argmin_T  BCE(sigmoid(logit(p_il) / T), y_il)           multi-label, one T per task
    ECE          sum_b |B_b| / n * |accuracy(B_b) - mean confidence(B_b)|,    15 equal-width bins of the
                 top-class probability (multi-label: of each label's max(p, 1 - p))
    ECE floor    what a perfectly calibrated model with the same confidences c_i shows on as many responses:
                 the ECE of correct_i ~ Bernoulli(c_i), mean and 95th percentile over 1,000 draws (on 170
                 responses it is 0.05-0.08, so a smaller target cannot be checked on so few)
    conformal    s_i = 1 - p_i[y_i] (calibrated);  q = the ceil((n + 1) * level)-th smallest s_i
                 (split conformal: a new response's set covers its true score with probability >= level)
    score set    {k : 1 - p_k <= q} with the model's score added (its argmax, or where the model decodes
                 ordinal scores by cut-points, raykd.decoding, the decoded score); an ordinal score's set is
                 the smallest range of scores holding it
    confidence   max_k p_k (multi-class); min_l max(p_l, 1 - p_l) (multi-label: its least sure label)
    review       needs_review = confidence < tau, tau the confidence cut that leaves `rate` of the
                 calibration responses to people, or the lowest cut at which the auto-scored ones still
                 reach `target` on the task's primary metric (QWK for scores)

A continuous task's model gives each response a mean m and a spread s (raykd.heads); d = its decided score
(m clipped and rounded to the step h, h = 1 without a step):

    spread scale c* = sqrt(mean_i ((y_i - m_i) / s_i)^2)    the Gaussian NLL's minimiser over s -> c s (kept
                 in `temperature`)
    confidence   P(d - h/2 <= Y <= d + h/2),  Y ~ N(m, (c s)^2): the chance the rounded score is the true one
                 (at an end of the range the interval is open beyond it)
    ECE          as multi-class, with "correct" = the gold score rounds to d
    conformal    s_i = |y_i - m_i| / (c s_i);  q as above;  interval [m - q c s, m + q c s], its ends moved in
                 to the nearest steps (gold scores lie on them, so the steps it holds are what it covers),
                 clipped to the range, always holding d; the score set is its two ends
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit, log_softmax, logit, softmax
from scipy.stats import norm

from raykd import metrics
from raykd.config import ReviewConfig
from raykd.data.dataset import CONTINUOUS, MULTICLASS, TaskSpec
from raykd.errors import ConfigError
from raykd.heads import decide
from raykd.io import atomic_path, write_text_atomic

CALIBRATION_FILE = "calibration.json"
ECE_BINS = 15
FLOOR_DRAWS = 1000
EPS = 1e-6
CUTS = 200  # candidate cuts tried for a target agreement (a 0.5% grid of shares at most)
MIN_AUTO = 20  # a review cut must leave at least this many calibration responses auto-scored to be trusted


@dataclass(frozen=True)
class ReviewPolicy:
    """Which responses go to a person: the least confident `rate` of them, or as many as it takes for the rest
    to reach `target` agreement (exactly one of the two)."""

    rate: float | None = None
    target: float | None = None

    def __post_init__(self) -> None:
        if (self.rate is None) == (self.target is None):
            raise ConfigError("review", "give exactly one of a review rate and a target agreement")
        if self.rate is not None and not 0 <= self.rate <= 1:
            raise ConfigError("review.rate", f"must be in [0, 1], got {self.rate}")
        if self.target is not None and not -1 <= self.target <= 1:
            raise ConfigError("review.target", f"must be in [-1, 1], got {self.target}")

    def describe(self) -> str:
        return f"review rate {self.rate:g}" if self.rate is not None else f"target agreement {self.target:g}"


DEFAULT_POLICY = ReviewPolicy(rate=0.3)
DEFAULT_LEVEL = 0.9


def review_policy(cfg: ReviewConfig) -> ReviewPolicy:
    """The policy a `review:` config section names (a rate of 0.3 when it names none)."""
    if cfg.target_agreement is not None:
        return ReviewPolicy(target=cfg.target_agreement)
    return ReviewPolicy(rate=cfg.rate) if cfg.rate is not None else DEFAULT_POLICY


def _nll(logp: np.ndarray, y: np.ndarray, kind: str, temperature: float) -> float:
    if kind == MULTICLASS:
        return float(-log_softmax(logp / temperature, axis=-1)[np.arange(len(y)), y].mean())
    q = np.clip(expit(logp / temperature), EPS, 1 - EPS)
    return float(-(y * np.log(q) + (1 - y) * np.log(1 - q)).mean())


def _logits(probs: np.ndarray, kind: str) -> np.ndarray:
    p = np.clip(np.asarray(probs, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p) if kind == MULTICLASS else logit(p)


def fit_temperature(probs: np.ndarray, y: np.ndarray, kind: str = MULTICLASS) -> float:
    """The temperature minimising the negative log-likelihood of `y` (class indices, or 0/1 flags)."""
    z, y = _logits(probs, kind), np.asarray(y)
    best = minimize_scalar(lambda t: _nll(z, y, kind, math.exp(t)), bounds=(math.log(0.05), math.log(20.0)),
                           method="bounded", options={"xatol": 1e-5})
    return float(math.exp(best.x))


def apply_temperature(probs: np.ndarray, temperature: float, kind: str = MULTICLASS) -> np.ndarray:
    z = _logits(probs, kind) / temperature
    return softmax(z, axis=-1) if kind == MULTICLASS else expit(z)


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, kind: str = MULTICLASS,
                               bins: int = ECE_BINS) -> float:
    """Top-label ECE (multi-class), or the ECE of every label's yes/no decision pooled (multi-label)."""
    probs, y = np.asarray(probs, dtype=np.float64), np.asarray(y)
    correct = probs.argmax(axis=-1) == y if kind == MULTICLASS else ((probs >= 0.5) == (y == 1)).ravel()
    return _binned_gap(_class_confidences(probs, kind), correct, bins)


def _class_confidences(probs: np.ndarray, kind: str) -> np.ndarray:
    """What a class task's ECE bins: the top class's probability, or every label's max(p, 1 - p)."""
    return probs.max(axis=-1) if kind == MULTICLASS else np.maximum(probs, 1 - probs).ravel()


def _binned_gap(conf: np.ndarray, correct: np.ndarray, bins: int) -> float:
    if not len(conf):
        return float("nan")
    which = np.minimum((conf * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return float(total)


def conformal_threshold(probs: np.ndarray, y: np.ndarray, level: float) -> float:
    """Split-conformal q for class-probability scores s = 1 - p[y]; 1.0 (every score) when n is too small."""
    s = np.sort(1 - np.asarray(probs, dtype=np.float64)[np.arange(len(y)), np.asarray(y)])
    k = math.ceil((len(s) + 1) * level)
    return float(s[k - 1]) if 0 < k <= len(s) else 1.0


def score_set(probs: np.ndarray, q: float, ordinal: bool, decided: int | None = None) -> tuple[int, ...]:
    """The classes in one response's conformal set (never empty: the model's score, `decided` or else the top
    class, is always in it)."""
    keep = set(np.flatnonzero(1 - probs <= q + 1e-12).tolist())
    keep.add(int(np.argmax(probs)) if decided is None else int(decided))
    return tuple(range(min(keep), max(keep) + 1)) if ordinal else tuple(sorted(keep))


def confidence(probs: np.ndarray, kind: str) -> np.ndarray:
    """Per row: the top class's probability, or a multi-label task's least sure label's max(p, 1 - p)."""
    probs = np.asarray(probs, dtype=np.float64)
    return probs.max(axis=-1) if kind == MULTICLASS else np.maximum(probs, 1 - probs).min(axis=-1)


def fit_spread_scale(probs: np.ndarray, y: np.ndarray) -> float:
    """c* of the module docstring: the factor on a continuous model's spreads that best explains `y`."""
    probs = np.asarray(probs, dtype=np.float64)
    z = (np.asarray(y, dtype=np.float64) - probs[:, 0]) / np.maximum(probs[:, 1], EPS)
    return float(np.sqrt(np.mean(z**2))) if len(z) else 1.0


def scale_spread(probs: np.ndarray, factor: float) -> np.ndarray:
    probs = np.array(probs, dtype=np.float64, copy=True)
    probs[:, 1] *= factor
    return probs


def continuous_confidence(probs: np.ndarray, spec: TaskSpec) -> np.ndarray:
    """P(the rounded score is the true one) under N(m, s^2) (the module docstring)."""
    probs = np.asarray(probs, dtype=np.float64)
    half = (spec.step or 1.0) / 2
    d, sd = decide(probs, spec), np.maximum(probs[:, 1], EPS)
    # A score at an end of the range also stands for everything beyond it (scores are clipped there).
    upper = np.where(d >= spec.high, np.inf, d + half)
    lower = np.where(d <= spec.low, -np.inf, d - half)
    return norm.cdf((upper - probs[:, 0]) / sd) - norm.cdf((lower - probs[:, 0]) / sd)


def continuous_correct(probs: np.ndarray, y: np.ndarray, spec: TaskSpec) -> np.ndarray:
    return spec.steps(y) == spec.steps(decide(probs, spec))


def continuous_threshold(probs: np.ndarray, y: np.ndarray, level: float) -> float:
    """Split-conformal q for normalised residuals |y - m| / s; inf (the whole range) when n is too small."""
    probs = np.asarray(probs, dtype=np.float64)
    s = np.sort(np.abs(np.asarray(y, dtype=np.float64) - probs[:, 0]) / np.maximum(probs[:, 1], EPS))
    k = math.ceil((len(s) + 1) * level)
    return float(s[k - 1]) if 0 < k <= len(s) else math.inf


def score_interval(probs: np.ndarray, q: float, spec: TaskSpec) -> tuple[float, float]:
    """One response's conformal interval (module docstring): the steps inside it, clipped, holding d."""
    m, sd = float(probs[0]), float(probs[1])
    d = float(decide(np.asarray([probs]), spec)[0])
    lo, hi = (spec.low, spec.high) if math.isinf(q) else (m - q * sd, m + q * sd)
    if spec.step:  # gold scores lie on the steps: the steps inside [lo, hi] are the ones it covers
        lo = spec.low + math.ceil((lo - spec.low) / spec.step - 1e-9) * spec.step
        hi = spec.low + math.floor((hi - spec.low) / spec.step + 1e-9) * spec.step
    lo, hi = max(spec.low, min(lo, d)), min(spec.high, max(hi, d))  # type: ignore[type-var]
    return float(lo), float(hi)


def review_cut(conf: np.ndarray, y: np.ndarray, pred: np.ndarray, metric: str, policy: ReviewPolicy) -> float:
    """tau: responses with confidence < tau go to a person (see the module docstring). inf sends every response
    to a person (no cut reaches the target on enough responses)."""
    conf = np.asarray(conf, dtype=np.float64)
    if policy.rate is not None:
        return float(np.quantile(conf, policy.rate)) if policy.rate > 0 else -math.inf
    order = np.argsort(-conf, kind="stable")
    ranked = conf[order]
    # A cut falls between distinct confidences (ties are auto-scored together); at most CUTS candidates.
    ends = np.flatnonzero(np.r_[ranked[1:] != ranked[:-1], True]) + 1
    ends = ends[ends >= MIN_AUTO]
    if len(ends) > CUTS:
        ends = ends[np.unique(np.linspace(0, len(ends) - 1, CUTS).round().astype(int))]
    fn = metrics.metric_fn(metric)
    best = math.inf
    for m in ends:
        if fn(y[order[:m]], pred[order[:m]]) >= policy.target:
            best = float(ranked[m - 1])
    return best


@dataclass(frozen=True)
class TaskCalibration:
    """One task's fitted calibration, and the calibration evidence a new review policy is chosen from (scores
    and confidences only, never a response's text)."""

    kind: str
    ordinal: bool
    metric: str
    temperature: float
    conformal_q: float | None  # multi-class and continuous only
    review_below: float
    ece_before: float
    ece_after: float
    n: int
    confidences: list[float] = field(repr=False)
    gold: list[Any] = field(repr=False)
    predicted: list[Any] = field(repr=False)

    def auto_share(self) -> float:
        """The share of the calibration responses that the review cut leaves auto-scored."""
        return float(np.mean(np.asarray(self.confidences) >= self.review_below)) if self.n else 0.0


@dataclass(frozen=True)
class Calibration:
    level: float
    policy: ReviewPolicy
    source: str  # what it was fitted on: "out-of-fold" or "validation"
    tasks: dict[str, TaskCalibration]

    def probabilities(self, task: str, probs: np.ndarray) -> np.ndarray:
        t = self.tasks.get(task)
        return np.asarray(probs, dtype=np.float64) if t is None else rescale(probs, t.temperature, t.kind)

    def with_policy(self, policy: ReviewPolicy) -> Calibration:
        """The same calibration with review cuts chosen for another policy, from the saved evidence."""
        return replace(self, policy=policy, tasks={
            name: replace(t, review_below=review_cut(np.asarray(t.confidences), np.asarray(t.gold),
                                                     np.asarray(t.predicted), t.metric, policy))
            for name, t in self.tasks.items()})

    def save(self, model_dir: str | Path) -> Path:
        path = Path(model_dir) / CALIBRATION_FILE
        body = {"level": self.level, "policy": asdict(self.policy), "source": self.source,
                "tasks": {k: asdict(v) for k, v in self.tasks.items()}}
        write_text_atomic(path, json.dumps(body, default=_plain))
        return path

    @classmethod
    def load(cls, model_dir: str | Path) -> Calibration | None:
        """The model's calibration, or None for a model saved without one."""
        path = Path(model_dir) / CALIBRATION_FILE
        if not path.is_file():
            return None
        body = json.loads(path.read_text())
        return cls(float(body["level"]), ReviewPolicy(**body["policy"]), body["source"],
                   {k: TaskCalibration(**v) for k, v in body["tasks"].items()})


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(type(value).__name__)


def task_confidence(probs: np.ndarray, spec: TaskSpec) -> np.ndarray:
    """`confidence` for class tasks, `continuous_confidence` for continuous ones."""
    return continuous_confidence(probs, spec) if spec.kind == CONTINUOUS else confidence(probs, spec.kind)


def task_ece(probs: np.ndarray, y: np.ndarray, spec: TaskSpec) -> float:
    """`expected_calibration_error`, or for a continuous task the same binning of its confidence against
    whether the gold score rounds to the decided one."""
    if spec.kind != CONTINUOUS:
        return expected_calibration_error(probs, y, spec.kind)
    conf, correct = continuous_confidence(probs, spec), continuous_correct(probs, np.asarray(y), spec)
    return _binned_gap(conf, correct, ECE_BINS)


def ece_confidences(probs: np.ndarray, spec: TaskSpec) -> np.ndarray:
    """The confidences `task_ece` bins: the top class's, each label's max(p, 1 - p), or a continuous task's."""
    probs = np.asarray(probs, dtype=np.float64)
    return continuous_confidence(probs, spec) if spec.kind == CONTINUOUS else _class_confidences(probs, spec.kind)


def ece_floor(conf: np.ndarray, draws: int = FLOOR_DRAWS, seed: int = 0) -> tuple[float, float]:
    """(mean, 95th percentile) of the ECE of a perfectly calibrated model with confidences `conf` (see the
    module docstring): a measured ECE under the percentile cannot be told from perfect calibration."""
    conf = np.asarray(conf, dtype=np.float64)
    if not len(conf):
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    gaps = [_binned_gap(conf, rng.random(len(conf)) < conf, ECE_BINS) for _ in range(draws)]
    return float(np.mean(gaps)), float(np.quantile(gaps, 0.95))


def rescale(probs: np.ndarray, factor: float, kind: str) -> np.ndarray:
    """Apply a fitted temperature (class tasks) or spread scale (continuous tasks)."""
    return scale_spread(probs, factor) if kind == CONTINUOUS else apply_temperature(probs, factor, kind)


def fit_task(spec: TaskSpec, probs: np.ndarray, y: np.ndarray, level: float, policy: ReviewPolicy,
             thresholds: Sequence[float] | None = None) -> TaskCalibration:
    """Calibrate one task on `probs` (n x labels, the model's raw probabilities; n x (mean, sd) for a continuous
    task) against gold `y`."""
    probs, y = np.asarray(probs, dtype=np.float64), np.asarray(y)
    continuous = spec.kind == CONTINUOUS
    factor = fit_spread_scale(probs, y) if continuous else fit_temperature(probs, y, spec.kind)
    calibrated = rescale(probs, factor, spec.kind)
    pred = decide(probs, spec, thresholds)  # decisions stay the raw model's (temperature keeps their order)
    conf = task_confidence(calibrated, spec)
    metric = metrics.primary_metric(spec.kind, spec.ordinal)
    q = continuous_threshold(calibrated, y, level) if continuous else \
        conformal_threshold(calibrated, y, level) if spec.kind == MULTICLASS else None
    return TaskCalibration(
        kind=spec.kind, ordinal=spec.ordinal, metric=metric, temperature=factor,
        conformal_q=q, review_below=review_cut(conf, y, pred, metric, policy),
        ece_before=task_ece(probs, y, spec), ece_after=task_ece(calibrated, y, spec), n=len(y),
        confidences=[round(float(c), 6) for c in conf], gold=y.tolist(), predicted=pred.tolist())


def fit_calibration(specs: Sequence[TaskSpec], probs: Sequence[np.ndarray], tasks: Sequence[str],
                    gold: Sequence[Any], source: str, thresholds: dict[str, list[float]] | None = None,
                    level: float = DEFAULT_LEVEL, policy: ReviewPolicy = DEFAULT_POLICY) -> Calibration:
    """Per task with labelled responses: see `fit_task`. `probs[i]`, `tasks[i]`, `gold[i]` (None: unlabelled)."""
    names = np.asarray(tasks)
    labelled = np.array([g is not None for g in gold], dtype=bool)
    out = {}
    for spec in specs:
        rows = np.flatnonzero((names == spec.name) & labelled)
        if len(rows):
            out[spec.name] = fit_task(spec, np.stack([probs[i] for i in rows]),
                                      np.asarray([gold[i] for i in rows]), level, policy,
                                      (thresholds or {}).get(spec.name))
    return Calibration(level, policy, source, out)


@dataclass(frozen=True)
class Judgement:
    """What a school sees beside one score."""

    confidence: float
    score_set: tuple[str, ...]  # the conformal set's labels (multi-class), its interval's ends (continuous: one
    # when they meet)
    needs_review: bool


def judge(calibration: Calibration | None, spec: TaskSpec, calibrated: np.ndarray,
          decided: Sequence[Any] | None = None) -> list[Judgement]:
    """Per row of one task's calibrated probabilities (and, for multi-class tasks, the scores the model decided:
    they are always in the score set). Without a calibration (or for a task it did not see) the confidence is
    the raw one and nothing is marked for review: no cut was ever measured. A continuous task's score set is
    its conformal interval's two ends."""
    conf = task_confidence(calibrated, spec)
    t = calibration.tasks.get(spec.name) if calibration is not None else None
    decided = decided if decided is not None and spec.kind == MULTICLASS else [None] * len(conf)
    out = []
    for c, p, d in zip(conf, calibrated, decided, strict=True):
        labels: tuple[str, ...] = ()
        if t is not None and t.conformal_q is not None:
            if spec.kind == CONTINUOUS:
                labels = tuple(dict.fromkeys(f"{v:g}" for v in score_interval(p, t.conformal_q, spec)))
            else:
                labels = tuple(spec.labels[k] for k in score_set(p, t.conformal_q, spec.ordinal, d))
        out.append(Judgement(float(c), labels, bool(t is not None and c < t.review_below)))
    return out


SHARES = tuple(round(0.1 * k, 1) for k in range(1, 11))  # the coverage curve's points
TOP_SHARE = 0.7  # the share of the most confident responses the reports single out (one of SHARES)


@dataclass
class ConfidenceReport:
    """How a calibrated model's confidence holds on held-out responses of one task (the test split)."""

    n: int
    ece_before: float
    ece_after: float
    coverage: float | None  # share of responses whose true score is in their conformal set (or interval)
    mean_set_size: float | None  # classes per set; a continuous task's mean interval width in score points
    auto_share: float  # share auto-scored at the saved review cut
    auto_metric: float  # the task's primary metric over the auto-scored responses (NaN when none)
    all_metric: float  # ... over every response
    # (share auto-scored, primary metric of those) when the most confident share is auto-scored
    curve: list[tuple[float, float]] = field(default_factory=list)
    human: float | None = None  # two human raters' agreement on the same responses, where the data has a second
    # the ECE a perfectly calibrated model with the calibrated confidences shows on these n (mean, 95th percentile)
    ece_floor: float | None = None
    ece_floor_q95: float | None = None
    # exact agreement of the most confident 70% (class tasks): kappa is 0 when the model gives all of them one
    # score, however many are right
    top70_exact: float | None = None


def assess(calibration: Calibration, spec: TaskSpec, raw: np.ndarray, y: np.ndarray,
           thresholds: Sequence[float] | None = None) -> ConfidenceReport:
    """`raw`: the model's probabilities for held-out responses of `spec`'s task; `y` their gold labels."""
    t = calibration.tasks[spec.name]
    raw, y = np.asarray(raw, dtype=np.float64), np.asarray(y)
    calibrated = calibration.probabilities(spec.name, raw)
    pred = decide(raw, spec, thresholds)
    fn = metrics.metric_fn(t.metric)
    conf = task_confidence(calibrated, spec)
    auto = conf >= t.review_below
    coverage = size = None
    if t.conformal_q is not None and spec.kind == CONTINUOUS:
        ends = np.asarray([score_interval(p, t.conformal_q, spec) for p in calibrated]).reshape(-1, 2)
        coverage = float(np.mean((ends[:, 0] - 1e-9 <= y) & (y <= ends[:, 1] + 1e-9)))
        size = float(np.mean(ends[:, 1] - ends[:, 0]))  # the mean interval width, in score points
    elif t.conformal_q is not None:
        sets = [score_set(p, t.conformal_q, spec.ordinal, d) for p, d in zip(calibrated, pred, strict=True)]
        coverage = float(np.mean([int(label) in s for label, s in zip(y, sets, strict=True)]))
        size = float(np.mean([len(s) for s in sets]))
    order = np.argsort(-conf, kind="stable")
    curve = [(share, fn(y[order[:m]], pred[order[:m]])) for share in SHARES
             if (m := max(1, round(share * len(y)))) and m <= len(y)]
    floor, floor_q95 = ece_floor(ece_confidences(calibrated, spec))
    top = order[:max(1, round(TOP_SHARE * len(y)))]
    exact = float(np.mean(np.all(np.reshape(y[top] == pred[top], (len(top), -1)), axis=1))) \
        if spec.kind != CONTINUOUS else None
    return ConfidenceReport(
        n=len(y), ece_before=task_ece(raw, y, spec), ece_after=task_ece(calibrated, y, spec), coverage=coverage,
        mean_set_size=size,
        auto_share=float(auto.mean()), auto_metric=fn(y[auto], pred[auto]) if auto.any() else float("nan"),
        all_metric=fn(y, pred), curve=curve, ece_floor=floor, ece_floor_q95=floor_q95,
        top70_exact=exact)


def plot_coverage(reports: dict[str, ConfidenceReport], path: str | Path, human: float | None = None) -> Path:
    """Agreement of the auto-scored responses against the share auto-scored, one line per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, r in reports.items():
        ax.plot([s for s, _ in r.curve], [m for _, m in r.curve], marker="o", ms=3, label=name)
    if human is not None:
        ax.axhline(human, color="black", ls="--", lw=1, label=f"two human raters {human:.3f}")
    ax.set_xlabel("share of responses scored automatically (most confident first)")
    ax.set_ylabel("agreement of those with the gold score")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return Path(path)


def assess_all(calibration: Calibration, specs: Sequence[TaskSpec], probs: Sequence[np.ndarray],
               tasks: Sequence[str], gold: Sequence[Any], thresholds: dict[str, list[float]] | None = None
               ) -> dict[str, ConfidenceReport]:
    """`assess` per task that has labelled responses and a calibration."""
    names = np.asarray(tasks)
    labelled = np.array([g is not None for g in gold], dtype=bool)
    out = {}
    for spec in specs:
        rows = np.flatnonzero((names == spec.name) & labelled)
        if len(rows) and spec.name in calibration.tasks:
            out[spec.name] = assess(calibration, spec, np.stack([probs[i] for i in rows]),
                                    np.asarray([gold[i] for i in rows]), (thresholds or {}).get(spec.name))
    return out


def confidence_table(reports: dict[str, ConfidenceReport], level: float | None = None) -> str:
    """Markdown: per task, calibration error before and after, conformal coverage, and what the review cut
    leaves to people."""
    from raykd.tables import markdown

    at = f" (level {level:g})" if level is not None else ""
    head = ["task", "n", "ECE before", "ECE after", "ECE if perfectly calibrated (95th pct)", f"set coverage{at}",
            "mean set size", "auto-scored", "agreement auto-scored", "agreement all", f"agreement, top {TOP_SHARE:.0%}",
            f"exact agreement, top {TOP_SHARE:.0%}", "two human raters"]
    return markdown(head, [[name, r.n, r.ece_before, r.ece_after, _floor(r), r.coverage, r.mean_set_size,
                            f"{r.auto_share:.0%}", r.auto_metric, r.all_metric, dict(r.curve).get(TOP_SHARE),
                            r.top70_exact, r.human]
                           for name, r in reports.items()])


def _floor(r: ConfidenceReport) -> str | None:
    return None if r.ece_floor is None else f"{r.ece_floor:.3f} ({r.ece_floor_q95:.3f})"
