"""Uploads read with bounds while they parse, the same rows `raykd predict` reads, and names sent back safely."""

import pandas as pd
import pytest

from raykd.data.files import read_table
from raykd.errors import DataError
from raykd.serve.upload import UploadLimits, UploadRefused, content_disposition, parse_upload, upload_name

LIMITS = UploadLimits(max_rows=100, max_cell_chars=50, max_id_chars=10)
TRICKY = {
    "a.csv": 'id,text,question\r\n1,"quoted, with comma",q\r\n\r\n   \r\n2,"multi\nline ""quote"""\r\n3\r\n',
    "a.tsv": 'Id\tEssaySet\tEssayText\n1\t1\tstray "quote\n\n2\t1\t\n',
    "a.jsonl": '{"id": 1, "text": "x", "n": 2.5}\n\n{"id": "b", "text": null, "extra": true}\n',
}


@pytest.mark.parametrize("name", sorted(TRICKY))
def test_an_upload_parses_as_predict_reads_the_same_file(name, tmp_path):
    path = tmp_path / name
    path.write_bytes(TRICKY[name].encode())
    mine = parse_upload(name, path.read_bytes(), LIMITS)
    theirs = read_table(path)
    assert mine.columns.tolist() == theirs.columns.tolist()
    pd.testing.assert_frame_equal(mine.astype(object).where(mine.notna(), None).map(lambda v: None if v is None
                                                                                    else str(v)),
                                  theirs.map(lambda v: None if v is None else str(v)), check_dtype=False)


@pytest.mark.parametrize("name,data,error,needle", [
    ("a.csv", "id,text\n" + "1,x\n" * 101, UploadRefused, "more than 100 responses"),
    ("a.csv", "id,text\n1," + "y" * 51 + "\n", DataError, "a.csv, row 2: column 'text' has 51 characters"),
    ("a.csv", "id,text\n" + "z" * 11 + ",x\n", DataError, "column 'id' has 11 characters; at most 10"),
    ("a.csv", "", DataError, "no header row"),
    ("a.csv", 'id,text\n1,"never closed\n', DataError, "cannot parse as CSV near line 2: unexpected end of data"),
    ("a.jsonl", "[1, 2]\n", DataError, "row 1: each line must be a JSON object"),
    ("a.jsonl", '{"a": [1]}\n', DataError, "row 1: key 'a' holds a nested value"),
    ("a.jsonl", "\n".join(f'{{"id": "{i}", "text": "x"}}' for i in range(101)), UploadRefused, "more than 100"),
])
def test_bounds_and_errors(name, data, error, needle):
    with pytest.raises(error, match=needle):
        parse_upload(name, data.encode(), LIMITS)


def test_the_row_cap_stops_the_parse_early():
    """The reader stops at the first row past the cap instead of parsing what follows."""
    data = ("id,text\n" + "1,x\n" * 101).encode() + b"\xff" * 10  # bad bytes past the cap are never decoded as rows
    with pytest.raises((UploadRefused, DataError)):
        parse_upload("a.csv", data, LIMITS)


@pytest.mark.parametrize("given,expected", [
    ("../../etc/scores.csv", "scores.csv"), ("C:\\Users\\t\\class 7.tsv", "class 7.tsv"),
    ("a\r\nSet-Cookie: x.csv", "aSet-Cookie: x.csv"), ("\u202egnp.csv", "gnp.csv"), ("", "responses.csv")])
def test_upload_names_lose_folders_and_control_characters(given, expected):
    assert upload_name(given) == expected


@pytest.mark.parametrize("given", ["scores.parquet", "scores", "scores.xlsx", "scores.json"])
def test_other_formats_are_415(given):
    with pytest.raises(UploadRefused) as e:
        upload_name(given)
    assert e.value.status == 415 and "raykd predict" in e.value.detail


@pytest.mark.parametrize("name,fallback,encoded", [
    ("in.scored.csv", "in.scored.csv", "in.scored.csv"),
    ("作文.scored.csv", "responses.scored.csv", "%E4%BD%9C%E6%96%87.scored.csv"),
    ("Ärger \"x\".scored.csv", "Arger_x.scored.csv", "%C3%84rger%20%22x%22.scored.csv"),
])
def test_content_disposition_per_rfc_6266(name, fallback, encoded):
    assert content_disposition(name) == f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"
