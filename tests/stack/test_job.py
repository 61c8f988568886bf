"""The stacked teacher stage end to end on an ASAP-SAS set 1 slice (`tiny_stack`), and the ensemble as a model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from raykd.config import TrackingConfig
from raykd.data.preparation import reuse
from raykd.errors import RaykdError
from raykd.scoring import load_model, load_scorer, prob_columns
from raykd.stack.job import INSAMPLE
from raykd.teacher.config import EnsembleJobConfig
from raykd.teacher.export import read_soft_labels
from raykd.teacher.job import SOFT_LABELS, TeacherOutput


def probability_rows(table: pd.DataFrame, columns: list[str]) -> np.ndarray:
    return table[columns].to_numpy(np.float64)


def test_stack_teacher_is_a_teacher_output_with_cross_fitted_soft_labels(tiny_stack, tracking_uri) -> None:
    out = TeacherOutput.load(tiny_stack.output_dir)
    summary = out.result.stack
    assert out.result.backbone == "stack" and summary is not None
    assert summary.chosen and set(summary.chosen) <= set(summary.alone)
    assert summary.representations[0].computed > 0 and summary.representations[0].backbone == "minilm"
    assert set(summary.decoding) == {"asap_1"}
    assert summary.cv_scores["asap_1"] == pytest.approx(summary.cv_score)

    crossed, meta = read_soft_labels(out.soft_labels)
    insample, meta_in = read_soft_labels(out.folder / INSAMPLE)
    assert meta["soft_labels"] == "cross-fitted" and meta_in["soft_labels"] == "in-sample"
    columns = [f"p_{s}" for s in range(4)]
    pool = crossed["split"].isin(["train", "validation"]).to_numpy()
    rest = ~pool
    assert (crossed["id"].to_numpy() == insample["id"].to_numpy()).all()
    # Unlabelled and test responses: both tables come from the refitted stack. Labelled training responses:
    # out-of-fold probabilities, less sure of the gold score than the refit that learnt it.
    np.testing.assert_allclose(probability_rows(crossed[rest], columns), probability_rows(insample[rest], columns))
    assert not np.allclose(probability_rows(crossed[pool], columns), probability_rows(insample[pool], columns))
    gold = reuse(out.folder, None, "test").frame.set_index("id")["y"]
    y = np.asarray(gold.loc[crossed["id"][pool]].tolist(), dtype=int)
    p_cross = probability_rows(crossed[pool], columns)[np.arange(len(y)), y]
    p_in = probability_rows(insample[pool], columns)[np.arange(len(y)), y]
    assert p_in.mean() > p_cross.mean()

    client = mlflow.MlflowClient(tracking_uri)
    children = client.search_runs([client.get_run(out.result.run_id).info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{out.result.run_id}'")
    learners = {r.data.tags["raykd.learner"]: r for r in children}
    assert set(learners) == set(summary.alone)
    tags = learners[f"embedding:{summary.representations[0].key}"].data.tags
    assert tags["raykd.backbone_checksum"] == summary.representations[0].checksum
    assert tags["raykd.data_digest"] == out.result.data_digest
    assert {k for k, r in learners.items() if r.data.tags["raykd.kept"] == "true"} == set(summary.chosen)


def test_predict_on_the_stack_folder_reproduces_its_test_figures(tiny_stack, tmp_path) -> None:
    from raykd.predict.file import predict_file

    out = TeacherOutput.load(tiny_stack.output_dir)
    ds = reuse(out.folder, None, "test")
    test = ds.frame[ds.frame["split"] == "test"]
    # An ASAP-SAS file as a school has it: no prompt columns; the stack reads the set's prompt it kept.
    rows = pd.DataFrame({"Id": test["id"], "EssaySet": 1, "EssayText": test["text"],
                         "Score1": [int(y) for y in test["y"]]})
    rows.to_csv(tmp_path / "test.csv", index=False)
    metrics = predict_file(str(out.model_dir), str(tmp_path / "test.csv"), str(tmp_path / "scores.csv"),
                           stream="off")
    assert metrics["asap_1"]["qwk"] == pytest.approx(out.result.splits["test"].tasks["asap_1"]["qwk"], abs=1e-9)
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert {"confidence", "score_set", "needs_review"} <= set(scores.columns)
    soft, _ = read_soft_labels(out.soft_labels)
    expected = soft.set_index("id").loc[scores["id"].astype(str), [f"p_{s}" for s in range(4)]].to_numpy()
    raw = load_model(out.model_dir).predict_proba(test["text"].tolist(), test["task"].tolist())
    np.testing.assert_allclose(np.stack(raw), expected, atol=2e-3)  # bf16 states, batched another way


def test_a_stack_refuses_a_backbone_that_changed(tiny_stack, tmp_path) -> None:
    folder = shutil.copytree(Path(tiny_stack.model_dir), tmp_path / "model")
    manifest = json.loads((folder / "raykd_model.json").read_text())
    manifest["representations"][0]["checksum"] = "0" * 64
    (folder / "raykd_model.json").write_text(json.dumps(manifest))
    with pytest.raises(RaykdError, match="not the one this stack was fitted on"):
        load_scorer(str(folder))


def test_an_ensemble_folder_scores_as_the_weighted_mean_of_its_members(tiny_teacher, tiny_stack, tmp_path,
                                                                       tracking_uri) -> None:
    from raykd.teacher.ensemble import run_ensemble

    cfg = EnsembleJobConfig(output_dir=str(tmp_path / "ensemble"), teachers=[tiny_teacher.output_dir,
                                                                             tiny_stack.output_dir],
                            weights="fit", tracking=TrackingConfig(experiment="raykd-test-ensemble"))
    res = run_ensemble(cfg, tracking_uri)
    w = res.weights["asap_1"]
    manifest = json.loads((Path(res.model_dir) / "raykd_model.json").read_text())
    assert manifest["type"] == "ensemble" and manifest["weights"]["asap_1"] == w
    texts = ["the mass of the marble before and after", "I do not know", "how much vinegar in each container"]
    tasks = ["asap_1"] * 3
    members = [load_model(tiny_teacher.model_dir), load_model(tiny_stack.model_dir)]
    by_hand = [w[0] * a + w[1] * b for a, b in zip(members[0].predict_proba(texts, tasks),
                                                   members[1].predict_proba(texts, tasks), strict=True)]
    scorer = load_scorer(res.model_dir)
    np.testing.assert_allclose(np.stack(scorer.predict_proba(texts, tasks)), np.stack(by_hand), atol=1e-6)
    # Students are measured against all of it: the members' parameters together.
    assert scorer.num_parameters == members[0].num_parameters + members[1].num_parameters
    assert res.parameters["total"] == tiny_teacher.parameters["total"] + tiny_stack.parameters["total"]
    # Students start from the fine-tuned member's sub-words and embeddings; from a stack alone, from the frozen
    # backbone of its first representation.
    from raykd.students.embeddings import token_source, tokenizer_folder
    from raykd.teacher.model import minilm_path

    assert token_source(res.model_dir) == Path(res.model_dir) / manifest["members"][0]["path"]
    assert (tokenizer_folder(res.model_dir) / "tokenizer_config.json").is_file()
    assert token_source(tiny_stack.model_dir) == Path(minilm_path())
    # Its soft labels are the same mixture of the members' soft labels.
    soft, _ = read_soft_labels(res.soft_labels)
    first, _ = read_soft_labels(Path(tiny_teacher.output_dir) / SOFT_LABELS)
    second, _ = read_soft_labels(Path(tiny_stack.output_dir) / SOFT_LABELS)
    columns = prob_columns(scorer.layout)
    mixed = w[0] * first.set_index("id")[columns] + w[1] * second.set_index("id")[columns]
    np.testing.assert_allclose(soft.set_index("id")[columns].to_numpy(), mixed.loc[soft["id"]].to_numpy(),
                               atol=1e-9)


def test_a_multi_label_stack_learns_each_criterion(ray_session, tracking_uri, tmp_path) -> None:
    """Rubric criteria as labels (a PASTA-style file whose phrases give the labels): per-label probabilities,
    per-label thresholds fitted out of fold, and a lexical learner that finds the phrases."""
    from raykd.teacher.job import run_teacher
    from tests.fixtures import CRITERIA, tiny_stack_config, write_pasta_task

    data = write_pasta_task(tmp_path / "pasta", n_train=120, n_test=40)
    cfg = tiny_stack_config(tmp_path, data={"path": str(data), "options": {}, "include_unlabelled": False,
                                            "limit_per_task": None, "validation": 0.2},
                            stack={"representations": [], "groups": ["lexical", "text"]})
    res = run_teacher(cfg, tracking_uri=tracking_uri)
    soft, _ = read_soft_labels(res.soft_labels)
    probs = soft[[f"p_{c}" for c in CRITERIA]].to_numpy()
    assert ((probs >= 0) & (probs <= 1)).all() and not np.allclose(probs.sum(1), 1)
    manifest = json.loads((Path(res.model_dir) / "raykd_model.json").read_text())
    assert len(manifest["thresholds"]["task1"]) == len(CRITERIA)
    assert res.stack.chosen[0] == "lexical" and res.splits["test"].tasks["task1"]["micro_f1"] > 0.9
    scorer = load_scorer(res.model_dir)
    (p,) = scorer.predict_proba(["gas particles spread out and the pressure pushes the walls"], ["task1"])
    assert p[0] > 0.5 and p[2] > 0.5 and p[1] < 0.5  # E1 and E3, not E2
