"""Outputs safe to open: CSV cells a spreadsheet would run are neutralised; other formats keep their values."""

import pandas as pd
import pytest

from raykd.io import neutralise, spreadsheet_safe, write_table_atomic


@pytest.mark.parametrize("value,expected", [
    ("=1+1", "'=1+1"), ('=HYPERLINK("http://x";"y")', '\'=HYPERLINK("http://x";"y")'), ("+A1", "'+A1"),
    ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\rx", "'\rx"), ("\nx", "'\nx"), ("\0x", "'\0x"),
    ("-7", "-7"), ("+1.5e3", "+1.5e3"), ("-.5", "-.5"), ("plain", "plain"), ("", ""), ("'=already", "'=already"),
    (3, 3), (None, None)])
def test_neutralise(value, expected):
    assert neutralise(value) == expected


def test_csv_outputs_are_neutralised_and_others_are_not(tmp_path):
    frame = pd.DataFrame({"id": ["=cmd", "ok"], "p_1": [-0.0, 0.5], "n": [-1, 2]})
    assert spreadsheet_safe(frame)["id"].tolist() == ["'=cmd", "ok"] and frame["id"][0] == "=cmd"  # a copy
    write_table_atomic(frame, tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_text().splitlines() == ["id,p_1,n", "'=cmd,-0.0,-1", "ok,0.5,2"]
    write_table_atomic(frame, tmp_path / "out.jsonl")
    assert pd.read_json(tmp_path / "out.jsonl", lines=True)["id"].tolist() == ["=cmd", "ok"]
