"""MLflow models that score like raykd: a pair student logged to MLflow and loaded back with mlflow.pyfunc scores
a question-aware file exactly as `raykd predict` does, with its code and pinned requirements inside."""

from pathlib import Path

import mlflow
import pandas as pd
import pytest

from raykd.cli import main


@pytest.fixture(scope="module")
def pair_student(shared_data, tmp_path_factory):
    from raykd.data import make_splits, read_semeval
    from raykd.distill.config import DistillConfig, StudentConfig
    from raykd.distill.train import fit_student, save_fit
    from raykd.heads import TaskLayout

    ds = make_splits(read_semeval(shared_data / "semeval2013_task7", "sciEntsBank", 2), seed=0)
    f = ds.frame
    fit = fit_student(StudentConfig(arch="pair", overlap=True, hidden=16, min_freq=1),
                      DistillConfig(kd_weight=0.0, epochs=2), f[f["split"] == "train"].head(300),
                      f[f["split"] == "validation"].head(100), TaskLayout.of(ds.tasks))
    return save_fit(fit, tmp_path_factory.mktemp("pair") / "model"), f[f["split"] == "test"].head(30)


def test_a_pair_student_from_mlflow_scores_like_predict(pair_student, tracking_uri, tmp_path):
    from raykd.registry import log_model

    model, rows = pair_student
    rows[["id", "task", "text", "question", "reference"]].to_csv(tmp_path / "qa.csv", index=False)
    assert main(["predict", "--model", str(model), "--input", str(tmp_path / "qa.csv"),
                 "--output", str(tmp_path / "offline.csv")]) == 0
    offline = pd.read_csv(tmp_path / "offline.csv", dtype={"id": str, "prediction": str}).fillna({"score_set": ""})

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("pair-student-registry")  # not whichever experiment an earlier test left active
    with mlflow.start_run():
        info = log_model(model)
    inputs = {c.name: c.required for c in info.signature.inputs.inputs}
    assert inputs == {"id": False, "task": False, "text": True, "question": False, "reference": False}
    loaded = mlflow.pyfunc.load_model(info.model_uri)
    served = loaded.predict(pd.read_csv(tmp_path / "qa.csv", dtype=str))
    pd.testing.assert_frame_equal(served.astype({"id": str, "prediction": str}).reset_index(drop=True), offline,
                                  check_exact=False, atol=1e-6, check_dtype=False)
    # It really reads the references: without them, other probabilities.
    bare = loaded.predict(pd.read_csv(tmp_path / "qa.csv", dtype=str).drop(columns=["question", "reference"]))
    assert not bare["p_correct"].round(6).equals(served["p_correct"].round(6))

    local = Path(mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(tmp_path / "dl")))
    assert (local / "code" / "raykd" / "predict" / "rows.py").is_file()  # the code that scores travels with the model
    requirements = (local / "requirements.txt").read_text().split()
    assert not any(r.split("==")[0] == "raykd" for r in requirements)  # no unpinned look-alike to install
    assert all("==" in r for r in requirements if not r.startswith("mlflow")), requirements
    assert any(r.startswith("torch==") for r in requirements)
