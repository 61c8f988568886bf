import pytest

from raykd.data import MULTILABEL, load_dataset
from raykd.errors import DataError

HEADER = "id,response,E1,E2,E3,E4,E5\n"


def write_task(tmp_path, name="task5", rows_train=None, rows_test=None):
    rows_train = rows_train or ["a1,The balloon expands because gas particles spread out,1,1,0,0,1",
                                "a2,It gets bigger,0,1,0,0,0", "a3,Heat makes molecules move faster,1,0,1,1,0"]
    rows_test = rows_test or ["b1,The particles hit the walls more,1,0,0,1,0"]
    (tmp_path / f"{name}_train.csv").write_text(HEADER + "\n".join(rows_train) + "\n")
    (tmp_path / f"{name}_test.csv").write_text(HEADER + "\n".join(rows_test) + "\n")
    return tmp_path


def test_multilabel_task(tmp_path):
    ds = load_dataset(write_task(tmp_path))
    spec = ds.tasks["task5"]
    assert spec.kind == MULTILABEL and spec.labels == ("E1", "E2", "E3", "E4", "E5")
    assert len(ds.split("train")) == 3 and len(ds.split("test")) == 1
    assert ds.split("train").targets("task5").tolist()[0] == [1, 1, 0, 0, 1]
    assert ds.summary()["tasks"]["task5"]["label_distribution"] == {"E1": 3, "E2": 2, "E3": 1, "E4": 2, "E5": 1}


def test_non_binary_label_names_file_row_and_label(tmp_path):
    write_task(tmp_path, rows_train=["a1,fine,1,0,0,0,0", "a2,bad,1,2,0,0,0"])
    with pytest.raises(DataError) as e:
        load_dataset(tmp_path)
    msg = str(e.value)
    assert "task5_train.csv" in msg and "row 3" in msg and "'E2' must be 0 or 1" in msg
