"""The teacher through the full distributed path: Ray Train workers, DeepSpeed ZeRO, MLflow, Ray Data export."""

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
from safetensors.torch import load_file

from raykd.teacher.artifact import TeacherScorer
from raykd.teacher.export import read_soft_labels
from raykd.teacher.job import run_teacher
from raykd.teacher.train import KillPoint
from tests.fixtures import CRITERIA, tiny_teacher_config, write_pasta_task


def tiny_cfg(tmp_path, **sections):
    return tiny_teacher_config(tmp_path, **sections)


def test_tiny_gpt_oss_lora_zero3_two_workers(shared_data, tiny_teacher, tracking_uri):
    res = tiny_teacher

    soft, meta = read_soft_labels(res.soft_labels)
    assert set(soft["split"]) == {"train", "validation", "test", "unlabelled"}
    assert len(soft) == 4 * 16 and soft["id"].is_unique
    probs = soft[["p_0", "p_1", "p_2", "p_3"]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert meta["tasks"][0]["name"] == "asap_1" and meta["teacher_run_id"] == res.run_id
    assert "test/asap_1/qwk" in res.metrics and "validation/asap_1/qwk" in res.metrics

    # Only the LoRA adapters and the classification head are saved as trained weights.
    trained = load_file(f"{res.model_dir}/trainable.safetensors")
    assert trained and all("lora_" in k or "score" in k for k in trained)
    manifest = json.loads(Path(res.model_dir, "raykd_model.json").read_text())
    assert manifest["parameters"]["trainable"] < manifest["parameters"]["total"] / 10

    # The saved artifact reproduces the exported probabilities without any training state.
    scorer = TeacherScorer(res.model_dir)
    rows = soft.head(5).merge(ray_frame(shared_data), on="id")
    again = np.stack(scorer.predict_proba(rows["text"].tolist(), rows["task"].tolist()))
    np.testing.assert_allclose(again, rows[["p_0", "p_1", "p_2", "p_3"]].to_numpy(), atol=1e-4)

    client = mlflow.tracking.MlflowClient(tracking_uri)
    run = client.get_run(res.run_id)
    assert run.data.tags["raykd.data_digest"] == res.data_digest
    assert [m.step for m in client.get_metric_history(res.run_id, "val.score")] == [1, 2]
    assert run.inputs.dataset_inputs and run.inputs.dataset_inputs[0].dataset.digest == res.data_digest[:36]
    artifacts = {a.path for a in client.list_artifacts(res.run_id)}
    assert {"model", "soft_labels"} <= artifacts


def ray_frame(shared_data):
    from raykd.data import read_asap

    return read_asap(shared_data / "asap_sas", sets=[1], include_unlabelled=True).frame[["id", "text"]]


def test_killed_worker_resumes_from_last_checkpoint(ray_session, tracking_uri, tmp_path):
    """A multi-label tiny Llama on ZeRO-2; rank 1 is SIGKILLed in epoch 2, the fit resumes and finishes."""
    data = write_pasta_task(tmp_path / "pasta")
    cfg = tiny_cfg(tmp_path, data={"path": str(data), "options": {}, "include_unlabelled": False,
                                   "limit_per_task": None, "validation": 0.25},
                   model={"kind": "llm", "tiny": "llama", "max_length": 24}, deepspeed={"zero_stage": 2},
                   train={"epochs": 3, "batch_size": 8, "lr": 3e-3, "pos_weight": True, "patience": 5})
    res = run_teacher(cfg, tracking_uri=tracking_uri, kill_worker=KillPoint(rank=1, epoch=1, step=1))

    assert (tmp_path / "teacher" / ".worker_killed").exists()
    assert res.epochs_run == 3
    # Epoch 1 was checkpointed before the kill: after the restart training went on from epoch 2,
    # so each epoch reported its metrics exactly once.
    client = mlflow.tracking.MlflowClient(tracking_uri)
    assert [m.step for m in client.get_metric_history(res.run_id, "epoch")] == [1, 2, 3]
    manifest = json.loads(Path(res.model_dir, "raykd_model.json").read_text())
    assert len(manifest["thresholds"]["task1"]) == len(CRITERIA)
    soft, _ = read_soft_labels(res.soft_labels)
    assert [c for c in soft.columns if c.startswith("p_")] == [f"p_{c}" for c in CRITERIA]
    assert "test/task1/exact_match" in res.metrics


@pytest.mark.parametrize(
    ("section", "value", "message"),
    [
        ("model", {"kind": "encoder", "name_or_path": "no/such-model", "tiny": None}, "unknown backbone"),
        ("tasks", {"asap_1": ["0", "1", "2"]}, "do not match the data"),
        ("scaling", {"num_workers": 64, "cpus_per_worker": 1.0}, "the cluster has"),
    ],
)
def test_bad_configs_fail_clearly(shared_data, ray_session, tmp_path, section, value, message):
    from raykd.errors import ConfigError

    cfg = tiny_cfg(tmp_path, **{section: value})
    with pytest.raises(ConfigError, match=message):
        run_teacher(cfg, tracking_uri=f"sqlite:///{tmp_path}/m.db")


def test_train_only_run_reports_throughput(ray_session, tracking_uri, tmp_path):
    """export.enabled false (the benchmarks' throughput runs): train, report rates, write no soft labels; a
    reshaped random model (tiny_overrides) with keep_random_base off stores no base weights."""
    cfg = tiny_cfg(tmp_path, model={"tiny": "llama", "tiny_overrides": {"intermediate_size": 48},
                                    "keep_random_base": False},
                   train={"epochs": 1, "max_steps_per_epoch": 3}, deepspeed={"zero_stage": 2},
                   scaling={"num_workers": 1}, export={"enabled": False})
    res = run_teacher(cfg, tracking_uri=tracking_uri)
    assert res.soft_labels == "" and not (tmp_path / "teacher" / "soft_labels.parquet").exists()
    assert res.metrics["train_samples_per_s"] > 0 and res.metrics["train_steady_samples_per_s"] > 0
    assert not any(k.startswith(("test/", "validation/")) for k in res.metrics)
    assert not Path(res.model_dir, "base.safetensors").exists()
    assert json.loads((tmp_path / "teacher" / "teacher_result.json").read_text())["run_id"] == res.run_id
    run = mlflow.tracking.MlflowClient(tracking_uri).get_run(res.run_id)
    assert run.data.metrics["fit_seconds"] > 0 and "train_samples_per_s" in run.data.metrics


def test_smollm2_lora_two_steps_zero2_two_workers(shared_data, ray_session, tracking_uri, smollm2, tmp_path):
    """The real SmolLM2-135M from the model zoo, LoRA-tuned for 2 steps through Ray Train + DeepSpeed ZeRO-2 on
    2 CPU workers, exports soft labels that the saved artifact reproduces."""
    cfg = tiny_cfg(tmp_path, model={"kind": "llm", "tiny": None, "name_or_path": str(smollm2), "max_length": 32},
                   data={"limit_per_task": 8}, train={"epochs": 1, "max_steps_per_epoch": 2, "batch_size": 2},
                   deepspeed={"zero_stage": 2})
    res = run_teacher(cfg, tracking_uri=tracking_uri)

    soft, meta = read_soft_labels(res.soft_labels)
    assert len(soft) == 4 * 8 and meta["teacher_run_id"] == res.run_id
    probs = soft[["p_0", "p_1", "p_2", "p_3"]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert probs.std(axis=0).max() > 0  # the responses are read: not one constant distribution
    manifest = json.loads(Path(res.model_dir, "raykd_model.json").read_text())
    assert 130e6 < manifest["parameters"]["total"] < 140e6
    assert manifest["parameters"]["trainable"] < manifest["parameters"]["total"] / 50
    trained = load_file(f"{res.model_dir}/trainable.safetensors")
    assert trained and all("lora_" in k or "score" in k for k in trained)

    rows = soft.head(4).merge(ray_frame(shared_data), on="id")
    again = np.stack(TeacherScorer(res.model_dir).predict_proba(rows["text"].tolist(), rows["task"].tolist()))
    np.testing.assert_allclose(again, rows[["p_0", "p_1", "p_2", "p_3"]].to_numpy(), atol=1e-4)
