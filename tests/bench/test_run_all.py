"""The benchmark's command line: what it refuses before any stage runs (the stages are the library's)."""

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def run_all(monkeypatch, capsys):
    """`python -m bench.run_all ARGS` from the repository root, in this process (its exit status and stderr)."""
    from bench import run_all as module

    def run(*args: str) -> SimpleNamespace:
        monkeypatch.chdir(ROOT)
        monkeypatch.setattr(sys, "argv", ["bench.run_all", *args])
        try:
            code = module.main()
        except SystemExit as e:
            code = e.code
        return SimpleNamespace(returncode=code, stderr=capsys.readouterr().err)

    return run


def test_unknown_stage_and_missing_config_are_named(run_all, tmp_path):
    out = run_all("--config", "bench/config.yaml", "--workdir", str(tmp_path / "w"), "--only", "speed,nope")
    assert out.returncode == 2 and "unknown stage 'nope'" in out.stderr and "asap_teacher" in out.stderr
    out = run_all("--config", str(tmp_path / "absent.yaml"), "--workdir", str(tmp_path / "w"))
    assert out.returncode == 2 and "absent.yaml: no such file" in out.stderr


def test_a_workdir_belongs_to_one_config(run_all, tmp_path):
    cfg = tmp_path / "bench.yaml"
    cfg.write_text((ROOT / "bench" / "config.yaml").read_text())
    work = tmp_path / "w"
    # Validation happens before Ray starts: an unknown stage stops the run after the config stamp is written.
    assert run_all("--config", str(cfg), "--workdir", str(work), "--only", "nope").returncode == 2
    assert yaml.safe_load((work / "config.json").read_text())["distill"]["kd_weight"] == 0.5
    out = run_all("--config", str(cfg), "--workdir", str(work), "--set", "distill.kd_weight=0.9", "--only", "nope")
    assert out.returncode == 2 and "holds stages of a different config" in out.stderr


@pytest.mark.parametrize("name", ["config.yaml", "config.gpu.yaml"])
def test_a_bad_student_or_teacher_key_stops_the_run_before_any_stage(run_all, tmp_path, name):
    cfg = yaml.safe_load((ROOT / "bench" / name).read_text())
    student = next(iter(cfg["semeval_students"]))
    cfg["semeval_students"][student]["hiden"] = 8
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    out = run_all("--config", str(bad), "--workdir", str(tmp_path / "w"))
    assert out.returncode == 2 and f"{bad}: semeval_students.{student}.hiden: unknown key" in out.stderr
    del cfg["semeval_students"][student]["hiden"]
    cfg["asap_teacher"]["train"]["epochs"] = 0
    bad.write_text(yaml.safe_dump(cfg))
    out = run_all("--config", str(bad), "--workdir", str(tmp_path / "w2"))
    assert out.returncode == 2 and "asap_teacher.train.epochs: must be >= 1" in out.stderr
    assert not (tmp_path / "w2" / "teacher_asap").exists()


def test_a_cached_stage_is_reused_only_for_the_config_it_read(tmp_path):
    from bench.run_all import cached, load_saved

    calls = []

    def stage() -> dict:
        calls.append(1)
        return {"score": 0.5}

    path = tmp_path / "tune.json"
    assert cached(path, stage, {"epochs": 12})[0] == {"score": 0.5}
    assert cached(path, stage, {"epochs": 12})[0] == {"score": 0.5} and len(calls) == 1  # reused, not rerun
    with pytest.raises(SystemExit, match="tune.json was made from a different config"):
        cached(path, stage, {"epochs": 20})
    # A stage left out by --only is read for the later stages under the same check.
    with pytest.raises(SystemExit, match="tune.json was made from a different config"):
        load_saved(path, {"epochs": 20})
    assert len(calls) == 1
