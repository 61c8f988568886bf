"""The distill stage end to end on the tiny teacher: typed result, artifacts, MLflow lineage, and refusing
soft labels or data that are not what the teacher stage prepared."""

import shutil

import mlflow
import pytest

from raykd.data.config import DataConfig
from raykd.data.preparation import model_data
from raykd.distill.config import DistillConfig, DistillJobConfig, StudentConfig
from raykd.distill.job import DistillResult, run_distill
from raykd.errors import DataError
from raykd.pipeline import load_result
from raykd.students.artifact import StudentScorer
from raykd.teacher.export import read_soft_labels, write_soft_labels


def distill_cfg(teacher_dir, out, **extra) -> DistillJobConfig:
    base = dict(name="d", output_dir=str(out), teacher=str(teacher_dir),
                students={"lstm": StudentConfig(min_freq=1), "moe": StudentConfig(arch="moe", per_task=False,
                                                                                 min_freq=1)},
                distill=DistillConfig(epochs=3, patience=2))
    return DistillJobConfig(**{**base, **extra})


def test_distill_job(tiny_teacher, tracking_uri, tmp_path):
    # No data section: the stage reuses the data and splits the teacher stage recorded.
    result = run_distill(distill_cfg(tiny_teacher.output_dir, tmp_path / "distill"), tracking_uri=tracking_uri)

    assert result.families == ["lstm", "moe"]
    assert {(s.family, s.variant) for s in result.students} == {(f, v) for f in ("lstm", "moe") for v in ("kd", "nokd")}
    kd = result.student("lstm", "kd", "asap_1")
    assert kd.group == "lstm-asap_1" and kd.parameters < result.teacher.parameters
    assert 0 < kd.param_ratio < 1 and kd.speedup > 0 and kd.bytes > 0 and "asap_1" in kd.test.tasks
    assert result.metric("moe", "nokd", "asap_1", "qwk") == result.student("moe", "nokd", "asap_1").test.tasks[
        "asap_1"]["qwk"]
    (lstm,) = [t for t in result.targets if t.family == "lstm"]
    assert lstm.nokd_mean is not None and lstm.gap == pytest.approx(lstm.teacher_mean - lstm.kd_mean)
    table = (tmp_path / "distill" / "distill_report.md").read_text()
    assert table.startswith("| task | metric | teacher | lstm kd | lstm nokd | moe kd | moe nokd |")
    again = load_result(DistillResult, tmp_path / "distill" / "distill_result.json")
    assert again == result  # the saved result reads back typed and equal

    assert StudentScorer(kd.model_dir).manifest["kd_weight"] == 0.5
    assert model_data(kd.model_dir).digest == tiny_teacher.data_digest  # what `raykd feedback` checks against
    client = mlflow.tracking.MlflowClient(tracking_uri)
    parent = client.get_run(result.run_id)
    assert parent.data.tags["mlflow.parentRunId"] == tiny_teacher.run_id
    assert parent.data.tags["raykd.soft_labels_digest"] == tiny_teacher.soft_labels_digest
    assert parent.data.tags["raykd.data_digest"] == tiny_teacher.data_digest
    child = client.get_run(kd.run_id)
    assert child.data.tags["mlflow.parentRunId"] == result.run_id
    assert child.data.tags["raykd.teacher_run_id"] == tiny_teacher.run_id
    assert "test.score" in child.data.metrics and client.list_artifacts(kd.run_id, "model")


def copy_teacher(tiny_teacher, tmp_path):
    folder = tmp_path / "teacher"
    shutil.copytree(tiny_teacher.output_dir, folder, ignore=shutil.ignore_patterns("ray_results"))
    return folder


def test_soft_labels_from_another_split_are_refused(tiny_teacher, tmp_path):
    folder = copy_teacher(tiny_teacher, tmp_path)
    soft, meta = read_soft_labels(folder / "soft_labels.parquet")
    moved = soft.index[soft["split"] == "validation"][0]
    soft.loc[moved, "split"] = "train"  # soft labels made from another split of the same data
    write_soft_labels(soft, folder / "soft_labels.parquet", meta)
    with pytest.raises(DataError, match="scored as 'train' but is 'validation'") as e:
        run_distill(distill_cfg(folder, tmp_path / "d"))
    assert f"soft labels from the teacher stage at {folder}" in str(e.value)


def test_data_other_than_the_teachers_is_refused(tiny_teacher, tmp_path):
    folder = tiny_teacher.output_dir
    other_set = DataConfig(path="asap_sas", options={"sets": [2]}, include_unlabelled=True, limit_per_task=16)
    with pytest.raises(DataError, match=r"task\(s\) \['asap_2'\] were not prepared by the teacher stage at"):
        run_distill(distill_cfg(folder, tmp_path / "d", data=other_set))
    other_split = DataConfig(path="asap_sas", options={"sets": [1]}, include_unlabelled=True, limit_per_task=16,
                             validation=0.3)
    with pytest.raises(DataError, match="data.validation is 0.3 but the teacher stage at .* prepared the data with "
                                        "0.1"):
        run_distill(distill_cfg(folder, tmp_path / "d", data=other_split))


def test_distill_reads_its_teacher_from_an_object_store_and_keeps_its_students_there(tiny_teacher, tracking_uri,
                                                                                      tmp_path, monkeypatch):
    """The cluster's layout (issue 31): the teacher stage's folder in the S3 stand-in (moto), the distill stage
    reading it from there and publishing its own folder there; its students score from there too."""
    from bench.services import s3_standin
    from raykd import storage
    from raykd.scoring import load_scorer

    with s3_standin("runs") as s3:
        for key, value in s3.env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("RAYKD_STORAGE_CACHE", str(tmp_path / "cache"))
        staged = tmp_path / "staged"  # the teacher's folder, without its Ray Train checkpoints
        shutil.copytree(tiny_teacher.output_dir, staged, ignore=shutil.ignore_patterns("ray_results"))
        storage.publish(staged, "s3://runs/teacher")
        cfg = distill_cfg("s3://runs/teacher", "s3://runs/distill",
                          students={"lstm": StudentConfig(min_freq=1)}, baseline=False)
        result = run_distill(cfg, tracking_uri=tracking_uri)

        assert result.output_dir == "s3://runs/distill"
        (kd,) = result.students
        assert kd.model_dir == "s3://runs/distill/students/lstm-asap_1/kd"
        assert {"distill/distill_result.json", "distill/distill_report.md",
                "distill/students/lstm-asap_1/kd/raykd_model.json"} <= set(s3.keys("distill/"))
        assert load_result(DistillResult, storage.localize("s3://runs/distill") / "distill_result.json") == result
        assert not (tmp_path / "cache" / "stages").exists() or not any((tmp_path / "cache" / "stages").iterdir())
        # the teacher's reference figures were measured once and kept beside the teacher, in the store
        assert "teacher/teacher_reference.json" in s3.keys("teacher/")
        scorer = load_scorer(kd.model_dir)
        (probs,) = scorer.predict_proba(["the water moves"], ["asap_1"])
        assert probs.shape == (4,) and abs(probs.sum() - 1) < 1e-5
