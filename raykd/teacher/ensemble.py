"""The ensemble stage: several teachers' soft labels combined into one, in a folder later stages read like a
teacher's (`TeacherOutput`), so students train from it as from one teacher.

    mean   per response, the mean of the teachers' probability vectors
    fit    per task, convex weights w = softmax(theta) minimising the validation log-loss of the weighted mean
           against the gold labels (scipy.optimize; multi-label tasks by per-label binary log-loss)

Every teacher must have prepared the same data (digest): their records and splits are the ensemble's. The
folder holds soft_labels.parquet, prepared.json + splits.parquet, teacher_result.json (backbone `ensemble`, the
member runs and weights), and model/: the ensemble as a model (raykd.teacher.ensemble_artifact: every member's
folder inside, scored as the weighted mean), with decision thresholds and a calibration fitted on the combined
validation probabilities. Students are measured against the whole of it, and start from the sub-words of its
largest fine-tuned member. The stage's MLflow run tags every member run (`raykd.member_run_ids`).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd

from raykd.data.dataset import CONTINUOUS, MULTICLASS
from raykd.errors import ConfigError, DataError
from raykd.heads import TaskLayout
from raykd.pipeline import Lineage, StageRun, resolve_tracking_uri, say
from raykd.teacher.config import EnsembleJobConfig
from raykd.teacher.job import RESULT, SOFT_LABELS, TeacherOutput, TeacherResult

EPS = 1e-7


def load_members(folders: list[str]) -> list[TeacherOutput]:
    members = [TeacherOutput.load(f, key=f"teachers[{i}]") for i, f in enumerate(folders)]
    if len(members) < 2:
        raise ConfigError("teachers", "an ensemble needs at least two teacher folders")
    digests = {m.result.data_digest for m in members}
    if len(digests) != 1:
        raise DataError(str(members[1].folder), "the teachers prepared different data (digests "
                                                f"{sorted(d[:16] for d in digests)}); an ensemble needs one dataset")
    return members


def aligned(members: list[TeacherOutput]) -> tuple[pd.DataFrame, list[np.ndarray], TaskLayout, list[str]]:
    """The members' soft labels on the same responses in the same order: the identity columns, one probability
    matrix per member, the shared task layout and the probability columns."""
    from raykd.scoring import prob_columns
    from raykd.teacher.export import read_soft_labels

    tables = [read_soft_labels(m.soft_labels) for m in members]
    layout = TaskLayout.from_list(tables[0][1]["tasks"])
    columns = prob_columns(layout)
    first = tables[0][0].sort_values("id").reset_index(drop=True)
    matrices = [first[columns].to_numpy(np.float64)]
    for m, (soft, meta) in zip(members[1:], tables[1:], strict=True):
        if TaskLayout.from_list(meta["tasks"]) != layout:
            raise DataError(str(m.soft_labels), "the teachers score different tasks or labels")
        soft = soft.sort_values("id").reset_index(drop=True)
        same = (len(soft) == len(first) and (soft["id"].to_numpy() == first["id"].to_numpy()).all()
                and (soft["split"].to_numpy() == first["split"].to_numpy()).all()
                and (soft["text_sha256"].to_numpy() == first["text_sha256"].to_numpy()).all())
        if not same:
            raise DataError(str(m.soft_labels), "the teachers scored different responses, splits or texts")
        matrices.append(soft[columns].to_numpy(np.float64))
    return first[["id", "task", "split", "text_sha256"]], matrices, layout, columns


def fit_weights(probs: np.ndarray, y: np.ndarray, kind: str) -> np.ndarray:
    """Convex weights over teachers minimising the log-loss of the weighted mean on labelled rows (a continuous
    task: the squared error of the weighted mean score). `probs`: (teachers, rows, labels); `y`: class indices
    (multi-class), a 0/1 matrix (multi-label) or scores (continuous, `probs` holding (mean, sd))."""
    from scipy.optimize import minimize
    from scipy.special import softmax

    def loss(theta: np.ndarray) -> float:
        if kind == CONTINUOUS:
            return float(((np.tensordot(softmax(theta), probs[:, :, 0], axes=1) - y) ** 2).mean())
        p = np.tensordot(softmax(theta), probs, axes=1).clip(EPS, 1 - EPS)
        if kind == MULTICLASS:
            return float(-np.log(p[np.arange(len(y)), y]).mean())
        return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())

    theta = minimize(loss, np.zeros(len(probs)), method="Nelder-Mead", options={"xatol": 1e-4, "fatol": 1e-7}).x
    return softmax(theta)


def combine(matrices: list[np.ndarray], ids: pd.DataFrame, layout: TaskLayout, columns: list[str],
            weights: str, gold: pd.Series) -> tuple[np.ndarray, dict[str, list[float]]]:
    """The combined probability matrix and each task's weights over the teachers."""
    stacked = np.stack(matrices)  # (teachers, rows, columns)
    out = np.full(stacked.shape[1:], np.nan)
    chosen: dict[str, list[float]] = {}
    for spec in layout.tasks:
        rows = np.flatnonzero((ids["task"] == spec.name).to_numpy())
        cols = [columns.index(f"p_{lab}") for lab in spec.labels]
        block = stacked[:, rows][:, :, cols]
        w = np.full(len(matrices), 1 / len(matrices))
        if weights == "fit":
            fit_rows = np.flatnonzero((ids["split"].iloc[rows] == "validation").to_numpy()
                                      & gold.loc[ids["id"].iloc[rows]].notna().to_numpy())
            if len(fit_rows):
                y = np.asarray(gold.loc[ids["id"].iloc[rows[fit_rows]]].tolist())
                w = fit_weights(block[:, fit_rows], y, spec.kind)
        out[np.ix_(rows, cols)] = np.tensordot(w, block, axes=1)
        chosen[spec.name] = [float(x) for x in w]
    return out, chosen


def token_member(members: list[TeacherOutput]) -> int:
    """The member students start from (sub-words, embeddings): the fine-tuned teacher with the most parameters,
    else the first member."""
    from raykd.scoring import MANIFEST

    tuned = [i for i, m in enumerate(members)
             if json.loads((m.model_dir / MANIFEST).read_text()).get("type") == "teacher"]
    return max(tuned, key=lambda i: members[i].result.parameters.get("total", 0)) if tuned else 0


Held = tuple[list[np.ndarray], list[str], list[Any]]  # probabilities, tasks and gold labels of some responses


def validation_decisions(soft: pd.DataFrame, ds: Any, layout: TaskLayout) -> tuple[dict[str, list[float]], Held]:
    """The combined probabilities' decision thresholds (cut-points where cross-validation prefers them, multi-label
    thresholds), fitted on validation; and the validation probabilities, tasks and labels (the calibration's)."""
    from raykd.evaluation import tuned_decisions

    gold = ds.frame.set_index("id")["y"]
    rows = soft[(soft["split"] == "validation") & gold.loc[soft["id"]].notna().to_numpy()]
    probs = [rows[[f"p_{lab}" for lab in layout.spec(t).labels]].iloc[i].to_numpy(np.float64)
             for i, t in enumerate(rows["task"])]
    labels = gold.loc[rows["id"]].tolist()
    thresholds = {}
    for spec in layout.tasks:
        idx = np.flatnonzero((rows["task"] == spec.name).to_numpy())
        if len(idx):
            fitted, _ = tuned_decisions(np.stack([probs[i] for i in idx]), np.asarray([labels[i] for i in idx]), spec)
            if fitted is not None:
                thresholds[spec.name] = fitted
    return thresholds, (probs, rows["task"].tolist(), labels)


def run_ensemble(cfg: EnsembleJobConfig, tracking_uri: str | None = None) -> TeacherResult:
    from raykd.confidence import fit_calibration
    from raykd.data.preparation import PREPARED, SPLITS, reuse, write_model_data
    from raykd.io import file_digest
    from raykd.teacher.ensemble_artifact import save_ensemble
    from raykd.teacher.export import soft_label_scores, write_soft_labels
    from raykd.tracking import git_commit

    members = load_members(cfg.teachers)
    first = members[0]
    ds = reuse(first.folder, None, "ensemble")
    ids, matrices, layout, columns = aligned(members)
    runs = [m.result.run_id or "" for m in members]
    digest = first.prepared.digest  # reuse checked that the dataset is the one the members prepared
    lineage = Lineage(data_digest=digest, git_commit=git_commit())
    with StageRun.open("ensemble", cfg.name, cfg.output_dir, cfg.tracking,
                       resolve_tracking_uri(tracking_uri, cfg.tracking, first.result.tracking_uri), lineage,
                       params=asdict(cfg), dataset=ds, data_source=first.prepared.data.path,
                       tags={"raykd.member_run_ids": ",".join(runs), "raykd.backbone": "ensemble"}) as run:
        probs, weights = combine(matrices, ids, layout, columns, cfg.weights, ds.frame.set_index("id")["y"])
        soft = ids.copy()
        for j, c in enumerate(columns):
            soft[c] = probs[:, j]
        for name in (PREPARED, SPLITS):  # the members' shared preparation is the ensemble's
            shutil.copy(first.folder / name, run.out / name)
        write_soft_labels(soft, run.out / SOFT_LABELS, {"tasks": layout.to_list(), "teacher_run_id": run.run_id,
                                                        "member_run_ids": runs, "weights": weights,
                                                        "data_digest": digest})
        thresholds, held = validation_decisions(soft, ds, layout)
        total = sum(int(m.result.parameters.get("total", 0)) for m in members)
        model_dir = save_ensemble(run.out / "model", layout,
                                  [(m.model_dir, m.result.run_id or "", m.result.backbone) for m in members],
                                  weights, thresholds, token_member(members),
                                  {"total": total, "members": [m.result.parameters for m in members]})
        fit_calibration(layout.tasks, *held, "validation", thresholds).save(model_dir)
        write_model_data(model_dir, first.prepared)
        splits = {split: soft_label_scores(soft, ds, split, thresholds) for split in ("validation", "test")}
        soft_digest = file_digest(run.out / SOFT_LABELS)
        run.log_artifact(run.out / SOFT_LABELS, "soft_labels")
        metrics = {k: v for split, s in splits.items() for k, v in s.flat(f"{split}/").items()}
        run.log_metrics(metrics)
        result = TeacherResult(output_dir=run.location, model_dir=run.locate(model_dir),
                               soft_labels=run.locate(run.out / SOFT_LABELS), run_id=run.run_id,
                               tracking_uri=run.tracking_uri, data_digest=digest,
                               soft_labels_digest=soft_digest, metrics=metrics,
                               parameters={"total": total}, epochs_run=0, backbone="ensemble", splits=splits,
                               members=runs, weights=weights)
        run.save(result, RESULT)
    for split, scores in splits.items():
        say("ensemble", f"{split:10s} mean primary metric {scores.score:.4f}; weights {weights}")
    return result
