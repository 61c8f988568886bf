"""`raykd feedback`: corrections checked against the model's data, refused whole with the row named, recorded as
versions with lineage, and applied when the next stage reads its data."""

import dataclasses
import shutil

import mlflow
import pandas as pd
import pytest

from raykd.cli import main
from raykd.data.config import DataConfig
from raykd.data.preparation import PreparedData, load_unsplit, model_data, prepare_dataset, write_model_data
from raykd.errors import DataError
from raykd.feedback import apply_corrections, load_version, run_feedback, versions


@pytest.fixture
def model(asap1_student, shared_data, tmp_path):
    """The set-1 student with the record of the data it learnt from (as the stages write it)."""
    path, ds = asap1_student
    folder = shutil.copytree(path, tmp_path / "model")
    data = DataConfig(path=str(shared_data / "asap_sas"), options={"sets": [1]})
    write_model_data(folder, PreparedData("test", str(tmp_path), ds.digest(), len(ds), data))
    return folder, data


def unscored_ids(data: DataConfig, n: int) -> list[str]:
    f = load_unsplit(dataclasses.replace(data, include_unlabelled=True), corrected=False).frame
    return f.loc[f["split"] == "unlabelled", "id"].astype(str).head(n).tolist()


def write(tmp_path, name, rows, columns=("id", "task", "score", "grader")):
    path = tmp_path / name
    pd.DataFrame(rows, columns=list(columns)).to_csv(path, index=False)
    return path


def feedback_runs(tracking_uri):
    client = mlflow.tracking.MlflowClient(tracking_uri)
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


@pytest.mark.parametrize(("row", "reason"), [
    (["no-such-response", "asap_1", "2", "ms-k"], "unknown id 'no-such-response'"),
    ([None, "asap_1", "2", "ms-k"], "empty id"),
    ([None, "asap_1", "7", "ms-k"], "label '7' out of range for task 'asap_1'"),
    ([None, "asap_2", "1", "ms-k"], "not 'asap_2'"),
    ([None, "asap_1", "", "ms-k"], "empty score"),
])
def test_a_bad_row_refuses_the_file_naming_it_and_nothing_is_recorded(model, tmp_path, row, reason, capsys):
    folder, data = model
    good = unscored_ids(data, 3)
    if row[0] is None and reason != "empty id":
        row = [good[2], *row[1:]]
    elif row[0] is None:
        row = ["", *row[1:]]
    path = write(tmp_path, "c.csv", [[good[0], "asap_1", "1", "a"], [good[1], "asap_1", "3", "a"], row])
    store, uri = tmp_path / "store", f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(DataError) as err:
        run_feedback(str(folder), path, store=store, tracking_uri=uri)
    assert err.value.row == 4 and reason in err.value.reason and "nothing was recorded" in err.value.reason
    assert not store.exists() and not feedback_runs(uri)
    # the command says the same in one line and exits 2
    capsys.readouterr()
    assert main(["feedback", "--model", str(folder), "--corrections", str(path), "--store", str(store),
                 "--tracking-uri", uri]) == 2
    assert f"{path}, row 4: " in capsys.readouterr().err and not store.exists()


def test_a_response_corrected_twice_in_one_file_is_refused(model, tmp_path):
    folder, data = model
    rid = unscored_ids(data, 1)[0]
    path = write(tmp_path, "c.csv", [[rid, "asap_1", "1", "a"], [rid, "asap_1", "2", "b"]])
    with pytest.raises(DataError, match="corrected twice in this file \\(first in row 2\\)"):
        run_feedback(str(folder), path, store=tmp_path / "s", tracking_uri=f"sqlite:///{tmp_path / 'm.db'}")


def test_versions_carry_lineage_and_the_next_preparation_trains_on_them(model, tmp_path):
    folder, data = model
    ids = unscored_ids(data, 3)
    scored = prepare_dataset(data).frame
    train_id = str(scored.loc[(scored["split"] == "train") & (scored["y"] == 0), "id"].iloc[0])
    uri, store = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "store"
    # a one-task model needs no task column
    first = run_feedback(str(folder), write(tmp_path, "a.csv", [[ids[0], "2"], [ids[1], "0"], [train_id, "3"]],
                                            ("id", "score")), store=store, tracking_uri=uri)
    second = run_feedback(str(folder), write(tmp_path, "b.csv", [[ids[1], "asap_1", "1", "mr-t"],
                                                                 [ids[2], "asap_1", "3", "mr-t"]]),
                          store=store, tracking_uri=uri)
    assert [p.name for p in versions(store)] == ["v0001", "v0002"]
    assert (first.corrected, first.total, first.replaced) == (3, 3, 0)
    assert (second.corrected, second.total, second.replaced, second.parent) == (2, 4, 1, first.folder)
    assert second.data_digest == model_data(folder).digest and second.model == str(folder)
    version, corrections = load_version(store)  # the store means its latest version
    assert version == second
    assert dict(zip(corrections["id"], corrections["label"], strict=True)) == {
        ids[0]: "2", ids[1]: "1", train_id: "3", ids[2]: "3"}  # the later correction wins
    assert set(corrections.columns) == {"id", "task", "label", "grader", "version"}  # no text kept

    run = mlflow.tracking.MlflowClient(uri).get_run(second.mlflow_run_id)
    assert len(feedback_runs(uri)) == 2 and run.info.artifact_uri.startswith((tmp_path / "mlartifacts").as_uri())
    assert mlflow.tracking.MlflowClient(uri).get_experiment(run.info.experiment_id).name == "raykd-feedback"
    assert run.data.tags["raykd.corrections_version"] == second.folder
    assert run.data.tags["raykd.corrections_parent"] == first.folder
    assert run.data.tags["raykd.data_digest"] == second.data_digest and run.data.params["total"] == "4"
    assert [i.dataset.name for i in run.inputs.dataset_inputs] == ["corrections-v0002"]

    corrected = dataclasses.replace(data, corrections=second.folder)
    after = prepare_dataset(corrected).frame.set_index("id")
    before = scored.set_index("id")
    assert after.loc[ids[1], "y"] == 1 and after.loc[ids[1], "split"] == "train"  # unscored, now trained on
    assert after.loc[train_id, "y"] == 3 and after.loc[train_id, "split"] == "train"
    assert "unlabelled" not in set(after["split"])  # only corrected unscored responses come in
    assert len(after) == len(before) + 3
    common = before.index
    assert (after.loc[common, "split"] == before["split"]).all()  # nobody else moved

    with pytest.raises(DataError, match="recorded against other data"):
        other = load_unsplit(DataConfig(path=data.path, options={"sets": [2]}), corrected=False)
        apply_corrections(other, second.folder)


def test_a_stage_after_the_teacher_applies_the_same_version(model, tmp_path):
    from raykd.data.preparation import record, reuse

    folder, data = model
    ids = unscored_ids(data, 2)
    version = run_feedback(str(folder), write(tmp_path, "a.csv", [[ids[0], "asap_1", "2", ""],
                                                                  [ids[1], "asap_1", "1", ""]]),
                           store=tmp_path / "store", tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    cfg = dataclasses.replace(data, corrections=version.folder, limit_per_task=20)
    ds = prepare_dataset(cfg)
    assert set(ids) <= set(ds.frame["id"].astype(str))  # limit_per_task never cuts a correction
    record(ds, cfg, tmp_path / "teacher", "teacher")
    again = reuse(tmp_path / "teacher", None, "distill")
    assert again.digest() == ds.digest()
    with pytest.raises(DataError, match="data.corrections"):
        reuse(tmp_path / "teacher", dataclasses.replace(cfg, corrections=None), "distill")


def test_a_model_without_its_data_record_is_refused(asap1_student, tmp_path):
    path, _ = asap1_student
    c = write(tmp_path, "c.csv", [["1", "asap_1", "1", ""]])
    with pytest.raises(DataError, match="does not record the data it learnt from"):
        run_feedback(str(path), c, store=tmp_path / "s", tracking_uri=f"sqlite:///{tmp_path / 'm.db'}")
