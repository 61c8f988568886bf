import json

import pandas as pd
import pytest

from raykd.data import ColumnMap, load_dataset, read_generic
from raykd.errors import DataError

ROWS = [
    {"rid": "r1", "prompt": "p1", "answer": "Plants need light", "score": "2", "q": "Why?", "ref": "Light"},
    {"rid": "r2", "prompt": "p1", "answer": "Because", "score": "0", "q": "Why?", "ref": "Light"},
    {"rid": "r3", "prompt": "p2", "answer": "Energy is conserved", "score": "1", "q": "How?", "ref": "Energy"},
    {"rid": "r4", "prompt": "p2", "answer": "It moves", "score": "0", "q": "How?", "ref": "Energy"},
]
COLUMNS = ColumnMap(id="rid", text="answer", task="prompt", label="score", question="q", reference="ref")


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_formats_with_column_mapping(tmp_path, suffix):
    path = tmp_path / f"responses{suffix}"
    frame = pd.DataFrame(ROWS)
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".jsonl":
        path.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    else:
        frame.to_parquet(path)
    ds = read_generic(path, COLUMNS, labels=["0", "1", "2"], ordinal=True)
    assert set(ds.tasks) == {"p1", "p2"}
    assert ds.tasks["p1"].labels == ("0", "1", "2")
    row = ds.frame.set_index("id").loc["r1"]
    assert row["y"] == 2 and row["question"] == "Why?" and row["reference"] == "Light"


def test_labels_inferred_in_numeric_order(tmp_path):
    path = tmp_path / "r.csv"
    pd.DataFrame([{"id": i, "text": f"t{i}", "score": s} for i, s in enumerate(["10", "2", "1", "2"])]).to_csv(
        path, index=False)
    ds = load_dataset(path, columns={"label": "score"})
    assert ds.tasks["default"].labels == ("1", "2", "10")


def test_invalid_json_line_is_named(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"id": "1", "text": "ok"}\n{"id": "2", "text": \n')
    with pytest.raises(DataError, match=r"r.jsonl, row 2: invalid JSON"):
        read_generic(path, ColumnMap())
