"""Calibration, conformal sets and review cuts against values worked out by hand."""

import math

import numpy as np
import pytest

from raykd.confidence import (
    Calibration,
    ReviewPolicy,
    TaskCalibration,
    apply_temperature,
    assess,
    conformal_threshold,
    continuous_confidence,
    continuous_threshold,
    ece_floor,
    expected_calibration_error,
    fit_calibration,
    fit_spread_scale,
    fit_temperature,
    judge,
    review_cut,
    scale_spread,
    score_interval,
    score_set,
)
from raykd.data.dataset import TaskSpec
from raykd.errors import ConfigError

SCORES = TaskSpec("s", "multiclass", ("0", "1", "2"), ordinal=True)


def test_temperature_matches_the_closed_form():
    # Every response at (0.9, 0.1), 80% of them in class 0: the best calibrated p0 is 0.8, i.e.
    # 1 / (1 + 9^(-1/T)) = 0.8  =>  T = ln 9 / ln 4.
    probs = np.tile([0.9, 0.1], (100, 1))
    y = np.array([0] * 80 + [1] * 20)
    t = fit_temperature(probs, y)
    assert t == pytest.approx(math.log(9) / math.log(4), rel=1e-3)
    assert apply_temperature(probs, t)[0, 0] == pytest.approx(0.8, abs=1e-3)


def test_multilabel_temperature_matches_the_closed_form():
    # Every label at p = 0.9 and right 75% of the time: sigmoid(logit(0.9) / T) = 0.75  =>  T = ln 9 / ln 3.
    probs = np.full((40, 2), 0.9)
    y = np.array([[1, 1]] * 30 + [[0, 0]] * 10)
    assert fit_temperature(probs, y, "multilabel") == pytest.approx(math.log(9) / math.log(3), rel=1e-3)


def test_expected_calibration_error_by_hand():
    # Bin of 0.9: accuracy 0.5, |0.5 - 0.9| = 0.4; bin of 0.6: accuracy 1, |1 - 0.6| = 0.4; each half the rows.
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    assert expected_calibration_error(probs, np.array([0, 1, 0, 0])) == pytest.approx(0.4)


def test_the_ece_floor_of_a_perfectly_calibrated_model_by_hand():
    # Sure responses are always right: no gap. Two at 0.5 share a bin: 0, 1 or 2 right with chances 1/4, 1/2,
    # 1/4 give gaps 0.5, 0, 0.5, so 0.25 on average and 0.5 at the 95th percentile.
    assert ece_floor(np.ones(50)) == (0.0, 0.0)
    mean, q95 = ece_floor(np.array([0.5, 0.5]), draws=4000)
    assert mean == pytest.approx(0.25, abs=0.02) and q95 == 0.5
    # It shrinks as the responses grow: about 1 / sqrt(n) in one bin.
    assert ece_floor(np.full(1600, 0.7))[0] < ece_floor(np.full(100, 0.7))[0] / 2


def test_conformal_threshold_and_sets_by_hand():
    # Nonconformity s = 1 - p[y] = 0.1 .. 0.9 over 9 responses; level 0.8: the ceil(10 * 0.8) = 8th smallest.
    s = np.arange(1, 10) / 10
    probs = np.stack([[1 - v, v / 2, v / 2] for v in s])
    assert conformal_threshold(probs, np.zeros(9, dtype=int), 0.8) == pytest.approx(0.8)
    # Too few responses for the level: every score is in the set.
    assert conformal_threshold(probs, np.zeros(9, dtype=int), 0.95) == 1.0
    assert score_set(np.array([0.15, 0.25, 0.6]), 0.8, ordinal=False) == (1, 2)
    # 1 - p = (0.7, 0.95, 0.35): scores 0 and 2 qualify; an ordinal set is the range 0-2.
    assert score_set(np.array([0.3, 0.05, 0.65]), 0.8, ordinal=True) == (0, 1, 2)
    assert score_set(np.array([0.3, 0.05, 0.65]), 0.8, ordinal=False) == (0, 2)
    assert score_set(np.array([0.3, 0.05, 0.65]), 0.0, ordinal=True) == (2,)  # never empty


def test_review_cut_for_a_rate_and_a_target():
    conf = np.linspace(1.0, 0.5, 40)
    y = np.zeros(40, dtype=int)
    pred = np.array([0] * 30 + [1] * 10)  # the 30 most confident right, the rest wrong
    assert review_cut(conf, y, pred, "accuracy", ReviewPolicy(target=1.0)) == pytest.approx(conf[29])
    # Accuracy of the top m is 30 / m >= 0.9 up to m = 33.
    assert review_cut(conf, y, pred, "accuracy", ReviewPolicy(target=0.9)) == pytest.approx(conf[32])
    assert review_cut(conf, y, pred, "accuracy", ReviewPolicy(rate=0.25)) == pytest.approx(np.quantile(conf, 0.25))
    # No cut leaves MIN_AUTO responses at an unreachable target: everything goes to a person.
    assert review_cut(conf, y, np.ones(40, dtype=int), "accuracy", ReviewPolicy(target=0.5)) == math.inf


def test_review_policy_needs_exactly_one_goal():
    with pytest.raises(ConfigError, match="exactly one"):
        ReviewPolicy()
    with pytest.raises(ConfigError, match="review.rate"):
        ReviewPolicy(rate=1.5)


def test_fit_save_load_and_judge(tmp_path):
    rng = np.random.default_rng(0)
    z = rng.normal(scale=2.0, size=(300, 3))
    truth = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = np.array([rng.choice(3, p=p) for p in truth])
    probs = list(apply_temperature(truth, 1 / 2.5))  # a model 2.5 times too sure of itself
    cal = fit_calibration([SCORES], probs, ["s"] * 300, list(y), "validation", level=0.9,
                          policy=ReviewPolicy(rate=0.2))
    t = cal.tasks["s"]
    assert 1.8 < t.temperature < 3.5  # near the 2.5 it was sharpened by
    assert t.ece_after < t.ece_before
    assert t.auto_share() == pytest.approx(0.8, abs=0.01)
    cal.save(tmp_path)
    back = Calibration.load(tmp_path)
    assert back == cal
    calibrated = back.probabilities("s", np.stack(probs))
    coverage = np.mean([y[i] in [int(k) for k in j.score_set] for i, j in enumerate(judge(back, SCORES, calibrated))])
    assert coverage >= 0.9  # on its own calibration data, split conformal covers at least the level
    flagged = np.mean([j.needs_review for j in judge(back, SCORES, calibrated)])
    assert flagged == pytest.approx(0.2, abs=0.01)
    stricter = back.with_policy(ReviewPolicy(rate=0.5))
    assert np.mean([j.needs_review for j in judge(stricter, SCORES, calibrated)]) == pytest.approx(0.5, abs=0.01)


def test_the_most_confident_70_percent_get_their_exact_agreement_beside_kappa():
    # The 7 surest all get score 0 and 6 are right: kappa against a constant rater is 0, exact agreement 6/7.
    sure = [[c, 1 - c - 0.01, 0.01] for c in (0.95, 0.94, 0.93, 0.92, 0.91, 0.9, 0.89)]
    probs = np.array(sure + [[0.2, 0.3, 0.5]] * 3)
    y = np.array([0, 0, 0, 1, 0, 0, 0, 2, 2, 1])
    task = TaskCalibration(kind="multiclass", ordinal=True, metric="qwk", temperature=1.0, conformal_q=None,
                           review_below=0.0, ece_before=0.0, ece_after=0.0, n=0, confidences=[], gold=[],
                           predicted=[])
    r = assess(Calibration(0.9, ReviewPolicy(rate=0.2), "validation", {"s": task}), SCORES, probs, y)
    assert dict(r.curve)[0.7] == 0.0 and r.top70_exact == pytest.approx(6 / 7)


def test_uncalibrated_models_mark_nothing(tmp_path):
    assert Calibration.load(tmp_path) is None
    [j] = judge(None, SCORES, np.array([[0.4, 0.3, 0.3]]))
    assert j == j.__class__(0.4, (), False)


# Continuous scores 0-3 in halves: the model gives each response a mean and an sd (raykd.heads).
HALVES = TaskSpec("c", "continuous", low=0, high=3, step=0.5)


def test_spread_scale_is_the_root_mean_squared_standardised_residual():
    # Residuals (y - m) / s = 2, -2, 1, -1 at s = 0.5: c* = sqrt((4 + 4 + 1 + 1) / 4) = sqrt(2.5).
    probs = np.array([[1.0, 0.5], [2.0, 0.5], [1.5, 0.5], [1.5, 0.5]])
    y = np.array([2.0, 1.0, 2.0, 1.0])
    assert fit_spread_scale(probs, y) == pytest.approx(math.sqrt(2.5))
    assert scale_spread(probs, 2.0)[:, 1].tolist() == [1.0] * 4 and probs[0, 1] == 0.5  # a copy


def test_continuous_confidence_is_the_chance_the_rounded_score_is_right():
    # m 1.5, s 0.25: the rounded score 1.5 is right for Y in [1.25, 1.75], z = +-1: P = 0.6827.
    # m 3.2 (clipped to 3), s 0.5: at the top end the interval is open above: P(Y >= 2.75) = Phi(0.9) = 0.8159.
    probs = np.array([[1.5, 0.25], [3.2, 0.5]])
    conf = continuous_confidence(probs, HALVES)
    assert conf[0] == pytest.approx(0.682689, abs=1e-5)
    assert conf[1] == pytest.approx(0.815940, abs=1e-5)


def test_continuous_conformal_interval_by_hand():
    # |y - m| / s = 0.5, 1, ..., 4.5 over 9 responses; level 0.8: the 8th smallest, 4.
    probs = np.stack([[0.0, 1.0]] * 9)
    y = np.arange(1, 10) / 2
    assert continuous_threshold(probs, y, 0.8) == pytest.approx(4.0)
    assert continuous_threshold(probs, y, 0.95) == math.inf  # too few for the level: the whole range
    # m 1.3, s 0.2, q 2: [0.9, 1.7] holds the halves 1 and 1.5 -> [1, 1.5]; the decided 1.5 is inside.
    assert score_interval(np.array([1.3, 0.2]), 2.0, HALVES) == (1.0, 1.5)
    # [1.15, 1.25] holds no half: the interval is the decided score alone.
    assert score_interval(np.array([1.2, 0.05]), 1.0, HALVES) == (1.0, 1.0)
    # Clipped to the range; the decided score (3, from m 3.4) always inside.
    assert score_interval(np.array([3.4, 0.1]), 1.0, HALVES) == (3.0, 3.0)
    assert score_interval(np.array([1.0, 1.0]), math.inf, HALVES) == (0.0, 3.0)


def test_a_continuous_task_is_calibrated_judged_and_covered():
    rng = np.random.default_rng(0)
    y = rng.choice(np.arange(0, 3.5, 0.5), 600)
    probs = np.stack([y + rng.normal(0, 0.4, 600), np.full(600, 0.1)], axis=1)  # spreads 4x too narrow
    fitted = fit_calibration([HALVES], list(probs[:300]), ["c"] * 300, list(y[:300]), "validation",
                             level=0.9, policy=ReviewPolicy(rate=0.2))
    t = fitted.tasks["c"]
    assert t.metric == "pearson" and 3.0 < t.temperature < 5.0 and t.ece_after < t.ece_before
    verdicts = judge(fitted, HALVES, fitted.probabilities("c", probs[300:]))
    ends = np.array([[float(j.score_set[0]), float(j.score_set[-1])] for j in verdicts])
    covered = np.mean((ends[:, 0] <= y[300:]) & (y[300:] <= ends[:, 1]))
    assert 0.86 <= covered <= 0.95
    assert 0.1 <= np.mean([j.needs_review for j in verdicts]) <= 0.3
