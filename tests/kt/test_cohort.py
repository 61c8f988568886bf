"""Playing cohorts and calibrating a simulator to them (no Ray: a DKT built in the test)."""

from __future__ import annotations

import numpy as np
import torch

from raykd.kt import cohort
from raykd.kt.data import Sequence
from raykd.kt.models import DKT, KTIndex


def learners(n: int, seed: int) -> list[Sequence]:
    """Learners alternating skills 7 and 9; skill 7 is answered right 90% of the time, skill 9 20%."""
    rng = np.random.default_rng(seed)
    skills = np.tile([7, 9], 15)
    return [Sequence(skills, (rng.random(30) < np.where(skills == 7, 0.9, 0.2)).astype(np.int64)) for _ in range(n)]


def test_skill_rates_count_per_model_index():
    seqs = [Sequence(np.array([7, 9, 7]), np.array([1, 0, 0])), Sequence(np.array([9]), np.array([1]))]
    right, attempts = cohort.skill_rates(seqs, [s.correct for s in seqs], KTIndex.of([7, 9]))
    assert right.tolist() == [1.0, 1.0] and attempts.tolist() == [2.0, 2.0]


def test_calibration_brings_played_skill_rates_to_the_real_ones():
    torch.manual_seed(0)
    model = DKT(2, embed=4, hidden=8).eval()  # untrained: plays both skills near 50%
    seqs, index = learners(200, 0), KTIndex.of([7, 9])
    before = cohort.skill_rates(seqs, cohort.play(model, seqs, index, 0, 200), index)
    rounds = cohort.calibrate(model, seqs, index, 200, rounds=4, seed=10, damping=1.0)
    after = cohort.skill_rates(seqs, cohort.play(model, seqs, index, 0, 200), index)
    real = cohort.skill_rates(seqs, [s.correct for s in seqs], index)
    gap = [np.abs(x[0] / x[1] - real[0] / real[1]).max() for x in (before, after)]
    assert gap[0] > 0.2 and gap[1] < 0.05, gap
    assert len(rounds) == 4 and rounds[0].real_correct_rate == real[0].sum() / real[1].sum()
    # Zero rounds change nothing.
    bias = model.out.bias.clone()
    assert cohort.calibrate(model, seqs, index, 200, rounds=0, seed=0) == []
    assert torch.equal(bias, model.out.bias)
