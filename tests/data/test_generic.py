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


def continuous_rows(path, scores):
    pd.DataFrame([{"id": f"r{i}", "text": f"answer {i}", "score": s} for i, s in enumerate(scores)]).to_csv(
        path, index=False)
    return path


def test_continuous_scores_from_a_float_column(tmp_path):
    path = continuous_rows(tmp_path / "c.csv", ["0", "2.5", "5.0", "4.5"])
    ds = load_dataset(path, columns={"label": "score"}, continuous={"low": 0, "high": 5, "step": 0.5})
    spec = ds.tasks["default"]
    assert spec.kind == "continuous" and (spec.low, spec.high, spec.step) == (0.0, 5.0, 0.5)
    assert ds.targets("default").tolist() == [0.0, 2.5, 5.0, 4.5]
    assert ds.summary()["tasks"]["default"]["label_distribution"] == {"0": 1, "2.5": 1, "4.5": 1, "5": 1}


@pytest.mark.parametrize(("score", "reason"), [("5.5", "out of range"), ("2.25", "not on the step"),
                                               ("two", "not a number"), ("nan", "out of range")])
def test_a_bad_continuous_score_names_its_row(tmp_path, score, reason):
    path = continuous_rows(tmp_path / "c.csv", ["1", "2", score])
    with pytest.raises(DataError, match=f"row 4: .*{reason}"):
        load_dataset(path, columns={"label": "score"}, continuous={"low": 0, "high": 5, "step": 0.5})


@pytest.mark.parametrize(("scale", "reason"), [({"low": 3, "high": 1}, "low < high"),
                                               ({"low": 0, "high": 5, "step": 2}, "divide the range"),
                                               ({"low": 0, "hi": 5}, "unknown key 'hi'")])
def test_a_bad_continuous_range_is_refused(tmp_path, scale, reason):
    path = continuous_rows(tmp_path / "c.csv", ["1", "2"])
    with pytest.raises(DataError, match=reason):
        load_dataset(path, columns={"label": "score"}, continuous=scale)
