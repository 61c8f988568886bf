"""bench/quality.py checks every stage's config before its first (hour-long) stage runs."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
import quality  # noqa: E402


@pytest.mark.parametrize("name", ["quality.cpu.yaml", "quality.gpu.yaml"])
def test_shipped_configs_validate(name, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # GPU teachers name their config files from the repository root
    cfg = yaml.safe_load((ROOT / "bench" / name).read_text())
    quality.check_configs(cfg, tmp_path, tmp_path / "ensemble")


def test_a_bad_tune_key_stops_the_run_before_any_teacher(tmp_path):
    cfg = yaml.safe_load((ROOT / "bench" / "quality.cpu.yaml").read_text())
    cfg["tune"]["distill"]["patiense"] = 2
    cfg["teachers"]["gemma-3-270m-lora"]["config"] = "configs/absent.yaml"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "quality.py"), "--config", str(bad), "--workdir",
                          str(tmp_path / "w")], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 2
    assert f"{bad}: teachers.gemma-3-270m-lora.config: configs/absent.yaml: no such file" in out.stderr
    assert not (tmp_path / "w" / "teacher_minilm").exists()

    del cfg["teachers"]["gemma-3-270m-lora"]
    bad.write_text(yaml.safe_dump(cfg))
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "quality.py"), "--config", str(bad), "--workdir",
                          str(tmp_path / "w2")], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 2 and "tune.distill.patiense: unknown key" in out.stderr
    assert not (tmp_path / "w2" / "teacher_minilm").exists()
