"""The distill job end to end on the tiny teacher's soft labels: table, artifacts, MLflow lineage."""

import mlflow

from raykd.config import DataConfig, DistillConfig, DistillJobConfig, StudentConfig
from raykd.distill.job import run_distill
from raykd.students.artifact import StudentScorer


def test_distill_job(tiny_teacher, tracking_uri, tmp_path):
    cfg = DistillJobConfig(
        name="d", output_dir=str(tmp_path / "distill"), teacher=tiny_teacher.output_dir,
        data=DataConfig(path="asap_sas", options={"sets": [1]}, include_unlabelled=True, limit_per_task=16),
        students={"lstm": StudentConfig(min_freq=1), "moe": StudentConfig(arch="moe", per_task=False, min_freq=1)},
        distill=DistillConfig(epochs=3, patience=2), throughput_responses=32, throughput_batch=16,
    )
    report = run_distill(cfg, tracking_uri=tracking_uri)

    (row,) = report["table"]
    assert row["task"] == "asap_1" and row["metric"] == "qwk"
    for key in ("teacher", "lstm_kd", "lstm_nokd", "moe_kd", "moe_nokd", "lstm_params", "lstm_speedup"):
        assert row[key] is not None, key
    assert row["lstm_params"] < row["teacher_params"]
    assert {"lstm_kd_gain", "moe_gap_to_teacher", "moe_param_ratio"} <= set(report["targets"])
    assert (tmp_path / "distill" / "distill_report.md").read_text().startswith("| task |")

    kd = next(s for s in report["students"] if s["group"] == "lstm-asap_1" and s["variant"] == "kd")
    scorer = StudentScorer(kd["model_dir"])
    assert scorer.manifest["kd_weight"] == 0.5 and kd["bytes"] > 0 and kd["responses_per_s"] > 0

    client = mlflow.tracking.MlflowClient(tracking_uri)
    parent = client.get_run(report["run_id"])
    assert parent.data.tags["mlflow.parentRunId"] == tiny_teacher.run_id
    assert parent.data.tags["raykd.soft_labels_digest"] == tiny_teacher.soft_labels_digest
    child = client.get_run(kd["run_id"])
    assert child.data.tags["mlflow.parentRunId"] == report["run_id"]
    assert child.data.tags["raykd.teacher_run_id"] == tiny_teacher.run_id
    assert "test.score" in child.data.metrics and client.list_artifacts(kd["run_id"], "model")
