"""Cross-fitting a stack (raykd.stack.fit, raykd.stack.learners) on hand-made vectors: no backbone, no Ray."""

from __future__ import annotations

import numpy as np
import pytest

from raykd.data.dataset import MULTICLASS, TaskSpec
from raykd.stack.config import StackConfig
from raykd.stack.fit import fit_base, fit_meta, select, task_folds
from raykd.stack.learners import Neighbours, Rows, normalise

SPEC = TaskSpec("t", MULTICLASS, ("0", "1"), ordinal=True)


def rows_of(vectors: dict[str, np.ndarray], texts: list[str]) -> Rows:
    n = len(texts)
    return Rows(np.asarray(texts, dtype=object), np.full(n, None, dtype=object), np.full(n, None, dtype=object),
                {k: normalise(v) for k, v in vectors.items()}, {k: np.zeros((n, 2)) for k in vectors},
                {k: np.zeros_like(v) for k, v in vectors.items()})


def planted(n: int = 40, seed: int = 0) -> tuple[Rows, np.ndarray]:
    """Random states and labels; response n-1 is a duplicate of response 0 (same text, state and score)."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, 16))
    y = rng.integers(0, 2, n)
    texts = [f"response {i}" for i in range(n)]
    v[-1], y[-1], texts[-1] = v[0], y[0], texts[0]
    return rows_of({"r": v}, texts), y


def test_a_planted_duplicate_never_sees_itself_out_of_fold() -> None:
    rows, y = planted()
    cfg = StackConfig(neighbours=1)
    folds = task_folds(SPEC, y, np.asarray(rows.text, dtype=str), 5, seed=0)
    assert folds[0] == folds[-1]  # grouped by text: the two copies share a fold
    base = fit_base(SPEC, rows, y, np.arange(len(y)), folds, ["neighbours:r"], cfg)
    own = base.oof["neighbours:r"][[0, -1], y[0]]
    assert (own < 0.99).all()  # its nearest same-score neighbour out of fold is another response
    # In sample (the learner fitted on every response), each copy finds itself: the cosine is 1.
    assert base.final["neighbours:r"][0, y[0]] == pytest.approx(1.0, abs=1e-3)


def test_without_grouping_the_duplicate_would_see_itself() -> None:
    """The check above can fail: folds grouped by id instead of text put the copies apart for some seed, and
    the out-of-fold neighbour is then the response itself."""
    rows, y = planted()
    for seed in range(50):
        folds = task_folds(SPEC, y, np.arange(len(y)).astype(str), 5, seed)
        if folds[0] != folds[-1]:
            break
    else:
        pytest.fail("no seed separated the copies")
    base = fit_base(SPEC, rows, y, np.arange(len(y)), folds, ["neighbours:r"], StackConfig(neighbours=1))
    assert base.oof["neighbours:r"][0, y[0]] == pytest.approx(1.0, abs=1e-3)


def test_neighbour_features_by_hand() -> None:
    spec = TaskSpec("t", MULTICLASS, ("0", "1", "2"), ordinal=True)
    bank = rows_of({"r": np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])}, ["a", "b", "c"])
    learner = Neighbours(spec, "r", k=1).fit(bank, np.array([0, 1, 1]))
    query = rows_of({"r": np.array([[1.0, 0.0]])}, ["q"])
    # score 0: cosine to [1, 0] = 1; score 1: the best of cos([0, 1]) = 0 and cos([.6, .8]) = .6; score 2: none
    np.testing.assert_allclose(learner.features(query), [[1.0, 0.6, 0.0]], atol=1e-3)
    two = Neighbours(spec, "r", k=2).fit(bank, np.array([0, 1, 1]))
    np.testing.assert_allclose(two.features(query), [[1.0, 0.3, 0.0]], atol=1e-3)  # mean of 0 and .6


def test_selection_keeps_what_predicts_and_leaves_noise() -> None:
    rng = np.random.default_rng(3)
    n = 300
    y = rng.integers(0, 2, n)
    good = rng.normal(size=(n, 8)) + 1.5 * y[:, None]
    noise = rng.normal(size=(n, 8))
    rows = rows_of({"good": good, "noise": noise}, [f"r{i}" for i in range(n)])
    cfg = StackConfig(min_gain=0.01)
    folds = task_folds(SPEC, y, np.asarray(rows.text, dtype=str), 5, 0)
    names = ["embedding:good", "embedding:noise"]
    base = fit_base(SPEC, rows, y, np.arange(n), folds, names, cfg)
    selection = select([base], {"t": SPEC}, names, cfg)
    assert selection.chosen == ["embedding:good"]
    assert selection.alone["embedding:good"] > 0.8 > 0.3 > selection.alone["embedding:noise"]
    fit = fit_meta(SPEC, base, selection.chosen, cfg.meta_c)
    assert fit.oof.shape == (n, 2) and np.allclose(fit.oof.sum(1), 1)
    # out of fold is not in sample: the refitted stack is surer of the responses it learnt from
    assert np.abs(fit.final - fit.oof).max() > 0


def test_rows_match_each_answer_with_its_closest_reference_answer() -> None:
    from raykd.stack.learners import build_rows

    states = {"a": [1.0, 0.0], "b": [0.0, 1.0], "ref one": [0.0, 1.0], "ref two": [1.0, 0.1],
              "the question": [0.6, 0.8]}
    rows = build_rows(["a", "b", "a"], ["the question", "the question", "the question"],
                      ["ref one\nref two", "ref one\nref two", None], ["r"],
                      lambda key, strings: np.array([states[s] for s in strings]))
    # a is closest to "ref two", b to "ref one"; the third answer has no reference: its question stands in
    np.testing.assert_allclose(rows.matched["r"][0], normalise(np.array([[1.0, 0.1]]))[0], atol=1e-6)
    np.testing.assert_allclose(rows.matched["r"][1], [0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(rows.matched["r"][2], [0.6, 0.8], atol=1e-6)
    np.testing.assert_allclose(rows.prompt["r"][:, 0], [0.6, 0.8, 0.6], atol=1e-6)  # cosine to the question
    np.testing.assert_allclose(rows.prompt["r"][:2, 1], [1.0 / np.hypot(1.0, 0.1), 1.0], atol=1e-6)


def test_the_pair_learner_carries_to_answers_of_a_new_question() -> None:
    """Answers that restate their reference answer are right, whatever the question: a pair learner fitted on
    some questions scores the answers of another."""
    rng = np.random.default_rng(5)
    n, d = 240, 12
    refs = rng.normal(size=(6, d))  # six questions' reference answers
    question = np.repeat(np.arange(6), n // 6)
    y = rng.integers(0, 2, n)
    answers = np.where(y[:, None] == 1, refs[question] + 0.3 * rng.normal(size=(n, d)), rng.normal(size=(n, d)))
    rows = rows_of({"r": answers}, [f"a{i}" for i in range(n)])
    rows.matched["r"] = normalise(refs[question])
    from raykd.stack.learners import Pair

    seen, new = question < 5, question == 5
    learner = Pair(SPEC, "r", 1.0).fit(rows.take(np.flatnonzero(seen)), y[seen])
    pred = learner.features(rows.take(np.flatnonzero(new))).argmax(1)
    assert (pred == y[new]).mean() > 0.9
