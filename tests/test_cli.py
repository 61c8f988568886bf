import json
import subprocess
import sys
from pathlib import Path


def test_data_inspect_asap_console_script(shared_data):
    exe = Path(sys.executable).parent / "raykd"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "raykd.cli"]
    out = subprocess.run([*cmd, "data", "inspect", str(shared_data / "asap_sas")],
                         capture_output=True, text=True, check=True).stdout
    assert "22,143 responses, 10 task(s)" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("asap_1 "))
    assert "0:380 1:429 2:524 3:339" in line
    assert "problems: none" in out


def test_data_inspect_json(shared_data, capsys):
    from raykd.cli import main

    assert main(["data", "inspect", str(shared_data / "semeval2013_task7"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["tasks"]["scientsbank_2way"]["splits"] == {"test": 540, "train": 4969}
    assert len(summary["digest"]) == 64
