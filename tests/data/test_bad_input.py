"""Every kind of bad input gets an error naming the file, the row and the reason; never a silent drop."""

import shutil

import pytest

from raykd.cli import main
from raykd.data import load_dataset, read_asap
from raykd.errors import DataError

HEADER = "Id,EssayText,Score1,Score2\n"
GOOD = ['1,"Measure the vinegar volume",2,2', '2,"Size of the containers",1,1', '3,"Rinse time",3,3']


def asap_dir(tmp_path, train_rows, test_rows=None, raw: bytes | None = None):
    gold = tmp_path / "asap" / "gold_train_test_split"
    gold.mkdir(parents=True)
    train = gold / "1_GOLD_train.csv"
    if raw is not None:
        train.write_bytes(raw)
    else:
        train.write_text(HEADER + "\n".join(train_rows) + "\n")
    (gold / "1_GOLD_test.csv").write_text(HEADER + "\n".join(test_rows or ['9,"Temperature",0,0']) + "\n")
    return tmp_path / "asap"


@pytest.mark.parametrize(
    ("rows", "row", "reason"),
    [
        ([*GOOD, '4,"   ",1,1'], 5, "empty text"),
        ([*GOOD, '4,"Vinegar type",7,1'], 5, "label '7' out of range for task 'asap_1' (allowed: 0, 1, 2, 3)"),
        ([*GOOD, '2,"Again",1,1'], 5, "duplicate id '2' (first seen in row 3)"),
        ([*GOOD, '4,"No score",,1'], 5, "missing label"),
        ([*GOOD, ',"No id",1,1'], 5, "empty id"),
    ],
)
def test_invalid_row_is_named(tmp_path, rows, row, reason):
    root = asap_dir(tmp_path, rows)
    with pytest.raises(DataError) as e:
        read_asap(root, sets=[1])
    assert e.value.path.endswith("1_GOLD_train.csv")
    assert e.value.row == row
    assert reason in e.value.reason


def test_missing_column(tmp_path):
    root = asap_dir(tmp_path, [], raw=b"Id,Text,Score1\n1,hello,2\n")
    with pytest.raises(DataError, match=r"1_GOLD_train.csv: missing column\(s\) \['EssayText'\]"):
        read_asap(root, sets=[1])


def test_wrong_encoding_names_line(tmp_path):
    raw = (HEADER + GOOD[0] + "\n").encode() + b'5,"caf\xe9 latte",1,1\n'
    root = asap_dir(tmp_path, [], raw=raw)
    with pytest.raises(DataError, match=r"wrong encoding: byte 0xe9 at line 3 is not valid UTF-8"):
        read_asap(root, sets=[1])


def test_skip_invalid_drops_and_reports(tmp_path):
    root = asap_dir(tmp_path, [*GOOD, '4,"",1,1', '5,"Too high",9,9', '1,"dup",1,1'])
    ds = read_asap(root, sets=[1], skip_invalid=True)
    assert len(ds) == 4  # 3 good train rows + 1 test row
    assert [p.row for p in ds.problems] == [5, 6, 7]
    assert any("duplicate id" in p.reason for p in ds.problems)


def test_missing_essay_set(tmp_path):
    root = asap_dir(tmp_path, GOOD)
    with pytest.raises(DataError, match=r"no \*_GOLD_\*.csv files for essay set\(s\) \[2\]"):
        read_asap(root, sets=[1, 2])


def test_cli_reports_problems_without_traceback(tmp_path, capsys):
    root = asap_dir(tmp_path, [*GOOD, '4,"Vinegar",7,1'])
    assert main(["data", "inspect", str(root)]) == 0
    out = capsys.readouterr().out
    assert "problems: 1 invalid row(s)" in out and "1_GOLD_train.csv, row 5" in out
    assert main(["data", "inspect", str(root), "--strict"]) == 1
    shutil.rmtree(root / "gold_train_test_split")
    assert main(["data", "inspect", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("raykd: error:") and "Traceback" not in err


def test_unknown_format_path(tmp_path):
    (tmp_path / "notes.docx").write_text("x")
    with pytest.raises(DataError, match="unsupported file type '.docx'"):
        load_dataset(tmp_path / "notes.docx")
