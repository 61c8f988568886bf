"""`raykd predict` on an ASAP-SAS-format file, with a saved student, a teacher, and an MLflow URI."""

import numpy as np
import pandas as pd
import pytest

from raykd.cli import main
from raykd.confidence import Calibration
from raykd.heads import decide
from raykd.students.artifact import StudentScorer


@pytest.fixture(scope="module")
def asap1(asap1_student):
    return asap1_student[1]


@pytest.fixture(scope="module")
def student_dir(asap1_student):
    return asap1_student[0]


def asap_file(asap1, path, n=40, with_score=True, sep="\t"):
    test = asap1.frame[asap1.frame["split"] == "test"].head(n)
    frame = pd.DataFrame({"Id": test["id"], "EssaySet": 1, "EssayText": test["text"]})
    if with_score:
        frame["Score1"] = [int(y) for y in test["y"]]
    frame.to_csv(path, sep=sep, index=False)
    return test


def test_predict_student_on_asap_tsv(asap1, student_dir, tmp_path, capsys):
    test = asap_file(asap1, tmp_path / "in.tsv")
    assert main(["predict", "--model", str(student_dir), "--input", str(tmp_path / "in.tsv"),
                 "--output", str(tmp_path / "out.csv")]) == 0
    out = pd.read_csv(tmp_path / "out.csv", dtype={"id": str})
    assert out.columns.tolist() == ["id", "task", "prediction", "confidence", "score_set", "needs_review",
                                    "p_0", "p_1", "p_2", "p_3"]
    assert out["id"].tolist() == test["id"].tolist()
    scorer = StudentScorer(student_dir)
    raw = np.stack(scorer.predict_proba(test["text"].tolist(), ["asap_1"] * len(test)))
    calibration = Calibration.load(student_dir)
    calibrated = calibration.probabilities("asap_1", raw)
    np.testing.assert_allclose(out[["p_0", "p_1", "p_2", "p_3"]].to_numpy(), calibrated, atol=1e-6)
    assert not np.allclose(calibrated, raw, atol=1e-3)  # the saved temperature is applied
    # argmax, or where the student decodes its scores by cut-points (raykd.decoding), the cut expected score
    assert (out["prediction"] == decide(raw, scorer.layout.spec("asap_1"), scorer.thresholds.get("asap_1"))).all()
    np.testing.assert_allclose(out["confidence"], calibrated.max(1), atol=1e-6)
    cut = calibration.tasks["asap_1"].review_below
    assert (out["needs_review"] == (out["confidence"] < cut)).all() and out["needs_review"].any()
    # An ordinal score set is a range that holds the predicted score.
    for pred, shown in zip(out["prediction"], out["score_set"].astype(str), strict=True):
        low, _, high = shown.partition("-")
        assert int(low) <= pred <= int(high or low)
    printed = capsys.readouterr().out
    assert "asap_1" in printed and "qwk=" in printed and "mean qwk:" in printed


def test_predict_teacher_by_mlflow_uri_without_scores(asap1, tiny_teacher, tracking_uri, tmp_path, capsys):
    asap_file(asap1, tmp_path / "in.csv", n=8, with_score=False, sep=",")
    uri = f"runs:/{tiny_teacher.run_id}/model"
    assert main(["predict", "--model", uri, "--tracking-uri", tracking_uri, "--input", str(tmp_path / "in.csv"),
                 "--output", str(tmp_path / "out.parquet")]) == 0
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert len(out) == 8 and np.allclose(out[["p_0", "p_1", "p_2", "p_3"]].sum(1), 1.0, atol=1e-5)
    assert "qwk=" not in capsys.readouterr().out


def test_predict_rejects_tasks_the_model_does_not_serve(student_dir, tmp_path, capsys):
    (tmp_path / "in.tsv").write_text("Id\tEssaySet\tEssayText\n1\t1\tvinegar amount\n2\t3\tkoala bears\n")
    assert main(["predict", "--model", str(student_dir), "--input", str(tmp_path / "in.tsv"),
                 "--output", str(tmp_path / "out.csv")]) == 2
    err = capsys.readouterr().err
    assert "in.tsv, row 3: unknown task 'asap_3' (known: asap_1)" in err
    assert not (tmp_path / "out.csv").exists()
    assert main(["predict", "--model", str(student_dir), "--input", str(tmp_path / "in.tsv"),
                 "--output", str(tmp_path / "out.csv"), "--skip-invalid"]) == 0
    assert len(pd.read_csv(tmp_path / "out.csv")) == 1


@pytest.mark.parametrize("output", ["csv", "parquet"])
def test_streaming_predict_writes_what_the_whole_file_path_writes(asap1, student_dir, ray_session, tmp_path, output):
    """`--stream on` (Ray Data, block by block) and `--stream off` (whole file) write the same table."""
    test = asap_file(asap1, tmp_path / "in.tsv", n=160)
    outputs = {}
    for mode in ("off", "on"):
        path = tmp_path / f"{mode}.{output}"
        assert main(["predict", "--model", str(student_dir), "--input", str(tmp_path / "in.tsv"),
                     "--output", str(path), "--stream", mode]) == 0
        outputs[mode] = pd.read_csv(path, dtype={"id": str}) if output == "csv" else pd.read_parquet(path)
    whole, streamed = outputs["off"], outputs["on"]
    assert streamed.columns.tolist() == whole.columns.tolist() == [
        "id", "task", "prediction", "confidence", "score_set", "needs_review", "p_0", "p_1", "p_2", "p_3"]
    assert streamed["id"].tolist() == whole["id"].tolist() == test["id"].tolist()  # input order kept
    for column in ("prediction", "score_set", "needs_review"):
        assert streamed[column].astype(str).tolist() == whole[column].astype(str).tolist(), column
    assert whole["needs_review"].any() and not whole["needs_review"].all()  # the fixture's rate-0.3 policy
    np.testing.assert_allclose(streamed["confidence"], whole["confidence"], atol=1e-6)
    np.testing.assert_allclose(streamed.filter(like="p_").to_numpy(), whole.filter(like="p_").to_numpy(), atol=1e-6)


def test_streaming_predict_reads_parquet_and_names_bad_rows(student_dir, ray_session, tmp_path, capsys):
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(30)], "task": "asap_1",
                          "text": [f"the mass of vinegar number {i}" for i in range(30)]})
    frame.loc[11, "text"] = "   "
    frame.to_parquet(tmp_path / "in.parquet")
    args = ["predict", "--model", str(student_dir), "--input", str(tmp_path / "in.parquet"), "--output",
            str(tmp_path / "out.csv"), "--stream", "on"]
    assert main(args) == 2
    assert "in.parquet, row 13: empty text for id 'r11'" in capsys.readouterr().err  # the header is row 1
    assert not (tmp_path / "out.csv").exists()  # nothing half-written
    assert main([*args, "--skip-invalid"]) == 0
    out = pd.read_csv(tmp_path / "out.csv")
    assert len(out) == 29 and "r11" not in set(out["id"])
    assert "skipped 1 invalid row(s)" in capsys.readouterr().out
