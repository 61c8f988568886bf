"""Soft targets join by response id; every mismatch is a clear error."""

import numpy as np
import pandas as pd
import pytest

from raykd.data import ColumnMap, read_generic
from raykd.data.preparation import text_digest
from raykd.distill.softlabels import attach_soft_labels
from raykd.errors import DataError
from raykd.heads import TaskLayout
from raykd.teacher.export import write_soft_labels


@pytest.fixture
def dataset(tmp_path):
    path = tmp_path / "r.csv"
    pd.DataFrame({"id": ["a", "b", "c"], "text": ["one", "two", "three"], "score": ["0", "1", "2"]}).to_csv(
        path, index=False)
    return read_generic(path, ColumnMap(label="score", task_name="t"), labels=["0", "1", "2"])


def soft_file(tmp_path, ds, probs, ids=None, texts=None, tasks=None):
    ids = ids or ds.frame["id"].tolist()
    texts = texts or ds.frame["text"].tolist()
    frame = pd.DataFrame({"id": ids, "task": "t", "split": "train", "text_sha256": [text_digest(t) for t in texts]})
    for j in range(np.asarray(probs).shape[1]):
        frame[f"p_{j}"] = np.asarray(probs)[:, j]
    path = tmp_path / "soft.parquet"
    write_soft_labels(frame, path, {"tasks": (tasks or TaskLayout.of(ds.tasks)).to_list()})
    return path


GOOD = [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.0, 0.1, 0.9]]


def test_join(tmp_path, dataset):
    frame = attach_soft_labels(dataset, soft_file(tmp_path, dataset, GOOD))
    np.testing.assert_allclose(np.stack(frame["soft"]), GOOD, atol=1e-6)


def test_missing_ids(tmp_path, dataset):
    path = soft_file(tmp_path, dataset, GOOD[:2], ids=["a", "b"], texts=["one", "two"])
    with pytest.raises(DataError, match=r"1 response id\(s\) have no teacher probabilities, e.g. \['c'\]"):
        attach_soft_labels(dataset, path)


def test_wrong_label_count(tmp_path, dataset):
    from raykd.data import TaskSpec

    two = TaskLayout.of([TaskSpec("t", "multiclass", ("0", "1"))])
    path = soft_file(tmp_path, dataset, [p[:2] for p in GOOD], tasks=two)
    with pytest.raises(DataError, match="the teacher has 2 multiclass labels"):
        attach_soft_labels(dataset, path)


def test_probabilities_must_sum_to_one(tmp_path, dataset):
    path = soft_file(tmp_path, dataset, [[0.7, 0.2, 0.1], [0.5, 0.8, 0.1], [0.0, 0.1, 0.9]])
    with pytest.raises(DataError, match="response 'b': multi-class probabilities sum to 1.4000"):
        attach_soft_labels(dataset, path)


def test_changed_text_is_detected(tmp_path, dataset):
    path = soft_file(tmp_path, dataset, GOOD, texts=["one", "TWO", "three"])
    with pytest.raises(DataError, match="response 'b': its text differs"):
        attach_soft_labels(dataset, path)
