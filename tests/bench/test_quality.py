"""bench/quality.py checks every stage's config before its first (hour-long) stage runs, and judges the
conformal coverage over all test responses."""

import sys
from pathlib import Path

import pytest
import yaml

from bench import quality
from bench.quality import _coverage_lines
from raykd.confidence import ConfidenceReport

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["quality.cpu.yaml", "quality.gpu.yaml"])
def test_shipped_configs_validate(name, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # GPU teachers name their config files from the repository root
    cfg = yaml.safe_load((ROOT / "bench" / name).read_text())
    quality.check_configs(cfg, tmp_path, tmp_path / "ensemble")


def run_quality(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """`python -m bench.quality ARGS` from the repository root, in this process: exit status and stderr."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "argv", ["bench.quality", *args])
    try:
        code = quality.main()
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def test_a_bad_tune_key_stops_the_run_before_any_teacher(tmp_path, monkeypatch, capsys):
    cfg = yaml.safe_load((ROOT / "bench" / "quality.cpu.yaml").read_text())
    cfg["tune"]["distill"]["patiense"] = 2
    cfg["teachers"]["gemma-3-270m-lora"]["config"] = "configs/absent.yaml"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    code, err = run_quality(monkeypatch, capsys, "--config", str(bad), "--workdir", str(tmp_path / "w"))
    assert code == 2
    assert f"{bad}: teachers.gemma-3-270m-lora.config: configs/absent.yaml: no such file" in err
    assert not (tmp_path / "w" / "teacher_minilm").exists()

    del cfg["teachers"]["gemma-3-270m-lora"]
    bad.write_text(yaml.safe_dump(cfg))
    code, err = run_quality(monkeypatch, capsys, "--config", str(bad), "--workdir", str(tmp_path / "w2"))
    assert code == 2 and "tune.distill.patiense: unknown key" in err
    assert not (tmp_path / "w2" / "teacher_minilm").exists()


def _report(covered: int, n: int) -> ConfidenceReport:
    return ConfidenceReport(n=n, ece_before=0.1, ece_after=0.05, coverage=covered / n, mean_set_size=1.5,
                            auto_share=0.7, auto_metric=0.8, all_metric=0.7)


def test_coverage_is_judged_over_all_test_responses_with_each_sets_interval():
    # 90 of 100 and 45 of 50: 135 of 150 = 90.0%, inside 88-93%; 90% is inside both sets' own intervals.
    (line,) = _coverage_lines([_report(90, 100), _report(45, 50)])
    assert "90.0% [" in line and "of the 150 (met)" in line and "on 2 of 2 sets" in line
    # 70 of 100 (its interval 60.4%-78.1% misses 90%) and 45 of 50: 115 of 150 = 76.7%.
    (line,) = _coverage_lines([_report(70, 100), _report(45, 50)])
    assert "76.7% [" in line and "**MISSED**" in line and "on 1 of 2 sets" in line
