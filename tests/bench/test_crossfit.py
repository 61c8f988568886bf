"""bench/crossfit.py: students from a stack's cross-fitted and in-sample soft labels, on the tiny stack."""

from __future__ import annotations

from pathlib import Path

from bench.crossfit import ARMS, crossfit_section, crossfit_stage
from raykd.config import from_dict
from raykd.tune.config import TuneJobConfig


def test_both_arms_are_scored_on_test_and_reported(tiny_stack, ray_session, tmp_path) -> None:
    cfg = from_dict(TuneJobConfig, {"name": "t", "output_dir": str(tmp_path / "t"), "teacher": tiny_stack.output_dir,
                                    "student": {"arch": "lstm", "min_freq": 1, "hidden": 8},
                                    "distill": {"epochs": 2, "patience": 2}})
    result = crossfit_stage(cfg, {"distill.kd_weight": 0.0}, Path(tiny_stack.output_dir), seeds=1)
    assert result["kd_weight"] == 0.5  # a champion without KD is compared with KD on, or there is no comparison
    for arm in ARMS:
        (scores,) = result["arms"][arm]
        assert set(scores["tasks"]) == {"asap_1"} and scores["score_interval"] is not None
    text = "\n".join(crossfit_section(result, ["asap_1"]))
    assert "| asap_1 |" in text and "cross-fitted" in text and "in-sample" in text
