"""Calibration, conformal sets and review cuts against values worked out by hand."""

import math

import numpy as np
import pytest

from raykd.confidence import (
    Calibration,
    ReviewPolicy,
    apply_temperature,
    conformal_threshold,
    expected_calibration_error,
    fit_calibration,
    fit_temperature,
    judge,
    review_cut,
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


def test_uncalibrated_models_mark_nothing(tmp_path):
    assert Calibration.load(tmp_path) is None
    [j] = judge(None, SCORES, np.array([[0.4, 0.3, 0.3]]))
    assert j == j.__class__(0.4, (), False)
