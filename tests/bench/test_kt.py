"""bench.kt's report, read from a real (tiny) `raykd kt` run."""

from __future__ import annotations

from pathlib import Path


def test_the_kt_report_states_each_check_from_the_recorded_results(tiny_kt):
    from bench.kt import markdown, report
    from raykd.kt.job import KTDistillResult, distill_dir
    from raykd.pipeline import load_result

    cfg, _ = tiny_kt
    r = report(cfg)
    distill = load_result(KTDistillResult, Path(distill_dir(cfg)) / "kt_distill_result.json")
    assert len(r.rows) == 1 + len(distill.trials) and r.rows[0][0].startswith("teacher: ")
    assert r.teacher_beats_every_student == (r.teacher_test_auc > max(t.test_auc for t in distill.trials))
    kd = [t.test_auc for t in distill.trials if t.kd_weight > 0]
    no_kd = [t.test_auc for t in distill.trials if t.kd_weight == 0]
    assert r.kd_beats_no_kd_on_every_seed == (min(kd) > max(no_kd))  # one seed: the KD student against its twin
    assert r.kd_pays_on_validation == distill.kd_pays
    text = markdown([r])
    assert f"## {cfg.name}" in text and f"{r.teacher_test_auc:.4f}" in text
