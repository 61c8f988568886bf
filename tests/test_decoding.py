"""QWK-aware decoding (raykd.decoding): hand-computed cut-points and decisions."""

from __future__ import annotations

import numpy as np
import pytest

from raykd.data.dataset import MULTICLASS, TaskSpec
from raykd.decoding import choose_decoding, decode, expected, fit_cutpoints
from raykd.evaluation import score_tasks
from raykd.heads import TaskLayout, decide
from raykd.metrics import qwk


def probs_with_expected(values: list[float], k: int = 3) -> np.ndarray:
    """Probability rows over scores 0..k-1 whose expected value is each of `values` (mass on two neighbours)."""
    out = np.zeros((len(values), k))
    for i, v in enumerate(values):
        low = min(int(np.floor(v)), k - 2)
        out[i, low], out[i, low + 1] = low + 1 - v, v - low
    return out


def test_expected_and_decode_by_hand() -> None:
    p = np.array([[0.5, 0.0, 0.5], [0.1, 0.8, 0.1], [0.0, 0.3, 0.7]])
    assert expected(p) == pytest.approx([1.0, 1.0, 1.7])
    # argmax would say 0 (a tie broken to the first), 1, 2; cuts at 0.5 and 1.5 say 1, 1, 2
    assert decode(p, [0.5, 1.5]).tolist() == [1, 1, 2]
    # cuts at 1.2 / 1.8: 1.0 is not above 1.2 -> 0; 1.7 is above 1.2 only -> 1
    assert decode(p, [1.2, 1.8]).tolist() == [0, 0, 1]


def test_cutpoints_fitted_on_toy_data_give_the_hand_computed_scores() -> None:
    # The model's expected values run high by about 0.4: rounding them (cuts 0.5, 1.5) misplaces three responses.
    e = [0.1, 0.3, 0.7, 0.8, 1.3, 1.4, 1.6, 1.8, 1.9, 1.95]
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    p = probs_with_expected(e)
    assert decode(p, [0.5, 1.5]).tolist() == [0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    cuts = fit_cutpoints(p, y)
    # Any first cut in [0.8, 1.3) and second in [1.8, 1.9) scores every response right; the fit takes the
    # candidates (quantiles of e) nearest the rounding cuts 0.5 and 1.5 within those ranges.
    assert 0.8 <= cuts[0] < 1.3 and 1.8 <= cuts[1] < 1.9
    assert decode(p, cuts).tolist() == y.tolist()
    assert qwk(y, decode(p, cuts)) == 1.0


def test_cross_validation_keeps_argmax_when_cuts_do_not_help() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    p = np.full((200, 4), 0.02)
    p[np.arange(200), y] = 0.94  # argmax is always right: cuts can only tie it
    chosen = choose_decoding(p, y)
    assert chosen.cuts is None
    assert chosen.argmax_qwk == 1.0
    assert chosen.held_out.tolist() == y.tolist()


def test_cross_validation_chooses_cuts_for_a_biased_model() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 400)
    # The model spreads its mass one score up from the truth: argmax is off by one whenever it says y + 1
    p = np.zeros((400, 4))
    for i, s in enumerate(y):
        p[i, s] = 0.45
        p[i, min(s + 1, 3)] += 0.55
    assert choose_decoding(p, y).cuts is None  # 400 responses: too few to trust cut-points over argmax
    chosen = choose_decoding(p, y, min_responses=400)
    assert chosen.cuts is not None
    assert chosen.cut_qwk > chosen.argmax_qwk
    assert len(chosen.cuts) == 3 and chosen.cuts == sorted(chosen.cuts)


def test_decide_and_score_tasks_use_cut_points_for_ordinal_tasks_only() -> None:
    ordinal = TaskSpec("o", MULTICLASS, ("0", "1", "2"), ordinal=True)
    nominal = TaskSpec("n", MULTICLASS, ("a", "b", "c"))
    p = np.array([[0.5, 0.0, 0.5]])
    assert decide(p, ordinal, [0.5, 1.5]).tolist() == [1]
    assert decide(p, ordinal).tolist() == [0]
    assert decide(p, nominal, None).tolist() == [0]
    with pytest.raises(ValueError, match="cut-points"):
        decide(p, ordinal, [0.5])
    e = [0.1, 0.3, 0.7, 0.8, 1.3, 1.4, 1.6, 1.8, 1.9, 1.95] * 60
    y = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2] * 60
    rows = list(probs_with_expected(e))
    layout = TaskLayout.of([ordinal])
    tuned = score_tasks(rows, ["o"] * len(y), y, layout, tune=True)
    assert len(tuned.thresholds["o"]) == 2
    again = score_tasks(rows, ["o"] * len(y), y, layout, tuned.thresholds)
    assert again.tasks["o"]["qwk"] == 1.0
    plain = score_tasks(rows, ["o"] * len(y), y, layout)
    assert plain.tasks["o"]["qwk"] < 1.0
