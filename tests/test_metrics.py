"""Metric values against hand-computed cases."""

import numpy as np
import pytest

from raykd import metrics


def test_qwk_hand_computed():
    # W = (i-j)^2/4; sum(W*O)=0.25, sum(W*E)=1.25 -> 1 - 0.25/1.25
    assert metrics.qwk([0, 1, 2], [0, 2, 2]) == pytest.approx(0.8)
    assert metrics.qwk([0, 1, 2, 3], [0, 1, 2, 3]) == 1.0
    assert metrics.qwk([0, 1], [1, 0]) == pytest.approx(-1.0)
    assert metrics.qwk([2, 2, 2], [2, 2, 2]) == 1.0  # one class, full agreement


def test_kappa_accuracy_f1_hand_computed():
    y, p = [0, 0, 1, 1], [0, 1, 1, 1]
    assert metrics.cohen_kappa(y, p) == pytest.approx(0.5)  # po=.75, pe=.5
    assert metrics.accuracy(y, p) == 0.75
    # class 0: P=1 R=.5 F1=2/3; class 1: P=2/3 R=1 F1=.8
    assert metrics.macro_f1(y, p) == pytest.approx((2 / 3 + 0.8) / 2)
    report = metrics.multiclass_report(y, p)
    assert set(report) == {"accuracy", "macro_f1", "kappa", "qwk"}


def test_multilabel_hand_computed():
    y = np.array([[1, 0], [0, 1], [1, 1]])
    p = np.array([[1, 0], [0, 0], [1, 1]])
    r = metrics.multilabel_report(y, p, ["E1", "E2"])
    assert r["exact_match"] == pytest.approx(2 / 3)
    assert r["f1_E1"] == 1.0 and r["f1_E2"] == pytest.approx(2 / 3)
    assert r["macro_f1"] == pytest.approx(5 / 6)
    assert r["micro_f1"] == pytest.approx(6 / 7)


def test_primary_metric():
    assert metrics.primary_metric("multiclass", ordinal=True) == "qwk"
    assert metrics.primary_metric("multiclass", ordinal=False) == "macro_f1"
    assert metrics.primary_metric("multilabel", ordinal=False) == "macro_f1"


def test_batched_bootstrap_metrics_equal_scikit_learn():
    """The bootstrap computes metrics from batched confusion matrices; each equals scikit-learn on its sample,
    also when a resample lacks a class (scikit-learn then weighs kappa by the labels present)."""
    from raykd.metrics import batched, bootstrap_interval, confusions, metric_fn

    rng = np.random.default_rng(1)
    for k in (2, 3, 4):
        t = rng.integers(0, k, 40)
        t[t == 1] = 0 if k == 4 else t[t == 1]  # with k = 4, class 1 never occurs
        p = np.where(rng.random(40) < 0.6, t, rng.integers(0, k, 40))
        samples = rng.integers(0, 40, size=(60, 40))
        cm = confusions(t, p, samples, k)
        for name in ("qwk", "macro_f1", "accuracy"):
            expected = np.array([metric_fn(name)(t[s], p[s]) for s in samples])
            np.testing.assert_allclose(batched(name, cm), expected, atol=1e-12)
    low, high = bootstrap_interval("qwk", t, p)
    assert low < metric_fn("qwk")(t, p) < high
    wide = bootstrap_interval("qwk", t[:15], p[:15])
    assert wide[1] - wide[0] > high - low  # fewer responses, a wider interval


def test_continuous_report_hand_computed():
    # y = (0, 1, 2, 3), pred = (0, 1, 3, 2): deviations (-1.5, -.5, .5, 1.5) and (-1.5, -.5, 1.5, .5);
    # r = (2.25 + .25 + .75 + .75) / 5 = 0.8; RMSE = sqrt(2 / 4); QWK on the same steps as classes 0..3.
    y, pred = [0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 3.0, 2.0]
    report = metrics.continuous_report(y, pred, [0, 1, 2, 3], [0, 1, 3, 2])
    assert report["pearson"] == pytest.approx(0.8)
    assert report["rmse"] == pytest.approx(np.sqrt(0.5))
    assert report["qwk"] == pytest.approx(metrics.qwk([0, 1, 2, 3], [0, 1, 3, 2]))
    assert metrics.pearson([1.0, 1.0], [0.0, 2.0]) == 0.0  # a constant side: no correlation to measure
    assert metrics.primary_metric("continuous", False) == "pearson"


def test_batched_continuous_metrics_equal_the_plain_ones():
    rng = np.random.default_rng(1)
    y = rng.normal(size=40)
    p = y + rng.normal(size=40)
    samples = metrics.resamples(rng, 40, 50)
    r = metrics.batched_continuous("pearson", y[samples], p[samples])
    e = metrics.batched_continuous("rmse", y[samples], p[samples])
    for k, idx in enumerate(samples):
        assert r[k] == pytest.approx(metrics.pearson(y[idx], p[idx]))
        assert e[k] == pytest.approx(metrics.rmse(y[idx], p[idx]))
    low, high = metrics.bootstrap_interval("pearson", y, p)
    assert low < metrics.pearson(y, p) < high
