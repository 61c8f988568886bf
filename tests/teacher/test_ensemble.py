"""Several teachers' soft labels combined into one teacher output that later stages read like a teacher's."""

import json
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pytest

from raykd.config import TrackingConfig
from raykd.errors import ConfigError, DataError
from raykd.registry import lineage
from raykd.teacher.config import EnsembleJobConfig
from raykd.teacher.ensemble import fit_weights, run_ensemble
from raykd.teacher.export import read_soft_labels, write_soft_labels
from raykd.teacher.job import RESULT, SOFT_LABELS, TeacherOutput

PROBS = ["p_0", "p_1", "p_2", "p_3"]


def second_teacher(tiny_teacher, tmp_path: Path, tracking_uri: str, probs: np.ndarray) -> Path:
    """A copy of the tiny teacher's folder with other probabilities and its own MLflow run."""
    folder = tmp_path / "second"
    shutil.copytree(tiny_teacher.output_dir, folder)
    soft, meta = read_soft_labels(folder / SOFT_LABELS)
    soft[PROBS] = probs
    write_soft_labels(soft, folder / SOFT_LABELS, meta)
    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run(tags={"raykd.backbone": "uniform"}) as run:
        mlflow.log_metric("test.score", 0.0)
    result = json.loads((folder / RESULT).read_text())
    result["run_id"] = run.info.run_id
    (folder / RESULT).write_text(json.dumps(result))
    return folder


def ensemble_config(tmp_path: Path, teachers: list, weights: str) -> EnsembleJobConfig:
    return EnsembleJobConfig(output_dir=str(tmp_path / f"ensemble_{weights}"), teachers=[str(t) for t in teachers],
                             weights=weights, tracking=TrackingConfig(experiment="raykd-test-ensemble"))


def test_mean_of_two_teachers_is_a_teacher_output_with_member_lineage(tiny_teacher, tmp_path, tracking_uri):
    first, _ = read_soft_labels(tiny_teacher.soft_labels)
    uniform = np.full((len(first), 4), 0.25)
    other = second_teacher(tiny_teacher, tmp_path, tracking_uri, uniform)

    res = run_ensemble(ensemble_config(tmp_path, [tiny_teacher.output_dir, other], "mean"), tracking_uri)

    soft, meta = read_soft_labels(res.soft_labels)
    by_id = first.set_index("id").loc[soft["id"], PROBS].to_numpy()
    np.testing.assert_allclose(soft[PROBS].to_numpy(), (by_id + 0.25) / 2, atol=1e-12)
    assert res.backbone == "ensemble" and res.weights == {"asap_1": [0.5, 0.5]}
    assert res.members == [tiny_teacher.run_id, json.loads((other / RESULT).read_text())["run_id"]]
    assert meta["member_run_ids"] == res.members and res.data_digest == tiny_teacher.data_digest
    # Later stages open it as they open a teacher: the same preparation, a model, per-split scores.
    out = TeacherOutput.load(res.output_dir)
    assert out.result.splits["test"].score_interval is not None
    tags = mlflow.MlflowClient(tracking_uri).get_run(res.run_id).data.tags
    assert tags["raykd.member_run_ids"] == ",".join(res.members) and tags["raykd.stage"] == "ensemble"


def test_fit_weights_prefer_the_teacher_closer_to_gold(tiny_teacher, tmp_path, tracking_uri):
    from raykd.data.preparation import reuse

    first, _ = read_soft_labels(tiny_teacher.soft_labels)
    gold = reuse(tiny_teacher.output_dir, None, "test").frame.set_index("id")["y"].loc[first["id"]]
    near_gold = np.full((len(first), 4), 0.25)
    for i, y in enumerate(gold):
        if y is not None:
            near_gold[i] = 0.02
            near_gold[i, y] = 0.94
    other = second_teacher(tiny_teacher, tmp_path, tracking_uri, near_gold)
    res = run_ensemble(ensemble_config(tmp_path, [tiny_teacher.output_dir, other], "fit"), tracking_uri)
    w = res.weights["asap_1"]
    assert sum(w) == pytest.approx(1.0) and w[1] > w[0]
    assert res.splits["validation"].score >= tiny_teacher.splits["validation"].score


def test_fit_weights_recover_the_better_of_two_teachers():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=400)
    good = np.full((400, 3), 0.1)
    good[np.arange(400), y] = 0.8
    noise = rng.dirichlet(np.ones(3), size=400)
    w = fit_weights(np.stack([noise, good]), y, "multiclass")
    assert w[1] > 0.9 and w.sum() == pytest.approx(1.0)
    labels = rng.integers(0, 2, size=(400, 2))
    w = fit_weights(np.stack([np.where(labels == 1, 0.9, 0.1), np.full((400, 2), 0.5)]), labels, "multilabel")
    assert w[0] > 0.9


def test_teachers_must_share_their_data(tiny_teacher, tmp_path, tracking_uri):
    with pytest.raises(ConfigError, match="teachers"):
        run_ensemble(ensemble_config(tmp_path, [tiny_teacher.output_dir], "mean"), tracking_uri)
    other = tmp_path / "other_data"
    shutil.copytree(tiny_teacher.output_dir, other)
    result = json.loads((other / RESULT).read_text())
    result["data_digest"] = "0" * 64
    (other / RESULT).write_text(json.dumps(result))
    with pytest.raises(DataError, match="different data"):
        run_ensemble(ensemble_config(tmp_path, [tiny_teacher.output_dir, other], "mean"), tracking_uri)


def test_registry_lineage_names_each_member(tiny_teacher, tmp_path, tracking_uri):
    """A champion distilled from an ensemble prints its member teachers in `raykd lineage`."""
    first, _ = read_soft_labels(tiny_teacher.soft_labels)
    other = second_teacher(tiny_teacher, tmp_path, tracking_uri, np.full((len(first), 4), 0.25))
    res = run_ensemble(ensemble_config(tmp_path, [tiny_teacher.output_dir, other], "mean"), tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run(tags={"raykd.teacher_run_id": res.run_id}) as run:
        mlflow.log_metric("test.score", 0.5)
    client = mlflow.MlflowClient(tracking_uri)
    client.create_registered_model("raykd-ensemble-lineage")
    version = client.create_model_version("raykd-ensemble-lineage", f"runs:/{run.info.run_id}/model",
                                          run_id=run.info.run_id, tags={"raykd.teacher_run_id": res.run_id})
    chain = lineage(f"raykd-ensemble-lineage/{version.version}", tracking_uri)
    members = [text for step, text in chain if step.strip() == "member"]
    assert [m.split(":")[0] for m in members] == res.members
