"""bench/device_check.py at a tiny size on CPU, so the script a lent GPU runs once cannot rot: it packs, runs
both parts, reports their figures, and imports nothing the device machine lacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# raykd's dependencies the device machine does not have (it has torch, transformers, peft, safetensors and
# scikit-learn, and what they import themselves: yaml, pandas and, where installed, pyarrow)
ABSENT = ("ray", "deepspeed", "mlflow", "pydantic", "fastapi", "starlette", "sqlalchemy")

RUN = """
import runpy, sys
absent = sys.argv[3:]
sys.argv = ["device_check", "run", "--pack", sys.argv[1], "--out", sys.argv[2], "--tiny"]
try:
    runpy.run_module("bench.device_check", run_name="__main__")
except SystemExit as e:
    code = e.code
loaded = sorted({m.split(".")[0] for m in sys.modules} & set(absent))
print("LOADED", loaded)
sys.exit(code or (1 if loaded else 0))
"""


def test_pack_then_a_tiny_run_reports_both_parts(shared_data, tmp_path):
    import pandas as pd

    from bench.device_check import pack

    info = pack(tmp_path / "pack")
    assert info["bytes"] < 60 * 2**20  # leaves room for the tree in the 64 MiB that travels
    assert info["rows"]["train"] > 1000 and info["rows"]["validation"] > 100
    packed = pd.read_csv(tmp_path / "pack" / "asap1.csv")
    assert list(packed.columns) == ["text", "y", "split"] and set(packed["split"]) == {"train", "validation"}
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", RUN, str(tmp_path / "pack"), str(out), *ABSENT], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "LOADED []" in proc.stdout
    report = json.loads((out / "device_check.json").read_text())
    llm, minilm = report["parts"]
    assert llm["ok"] and minilm["ok"] and report["env"]["tiny"]
    assert 0 < llm["figures"]["trainable"] < llm["figures"]["parameters"] and llm["figures"]["loss_finite"]
    assert llm["figures"]["samples_per_s"] > 0 and minilm["figures"]["samples_per_s"] > 0
    assert minilm["figures"]["steps"] == 4 and len(minilm["figures"]["validation_qwk_by_epoch"]) == 1
    assert "## MiniLM fine-tuned on ASAP-SAS set 1: ok" in (out / "device_check.md").read_text()


def test_a_run_without_a_pack_says_what_to_do(tmp_path, capsys):
    from bench.device_check import main

    assert main(["run", "--pack", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "bench.device_check pack" in capsys.readouterr().err
