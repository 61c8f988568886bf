"""Offline scoring of a file with a saved model (`raykd predict`)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raykd.data.dataset import MULTICLASS, RawRow, ScoringDataset, build_dataset
from raykd.data.files import cell, read_table
from raykd.errors import DataError
from raykd.heads import TaskLayout, evaluate, primary
from raykd.io import write_table_atomic


def read_for_scoring(path: str | Path, layout: TaskLayout, skip_invalid: bool = False) -> ScoringDataset:
    """Responses to score, for a model serving `layout`. Understands ASAP-SAS columns (`Id, EssaySet,
    EssayText[, Score1]`) and `id, task, text[, label | one column per rubric label]`; a one-task model
    needs no task column. Gold labels, when present, are kept for metrics."""
    path = Path(path)
    frame = read_table(path)
    cols = set(frame.columns)
    tasks = {t.name: t for t in layout.tasks}
    if {"EssaySet", "EssayText"} <= cols:
        id_col, text_col, label_col = "Id", "EssayText", "Score1" if "Score1" in cols else None

        def task_of(rec: dict) -> str:
            return f"asap_{cell(rec['EssaySet'])}"
    elif "text" in cols:
        id_col, text_col, label_col = ("id" if "id" in cols else None), "text", ("label" if "label" in cols else None)
        if "task" not in cols and len(tasks) != 1:
            raise DataError(str(path), f"missing column 'task' (this model serves {list(tasks)})")

        def task_of(rec: dict) -> str:
            return (cell(rec["task"]) or "") if "task" in rec else next(iter(tasks))
    else:
        raise DataError(str(path), "expected columns Id/EssaySet/EssayText or id/task/text; "
                                   f"found {list(frame.columns)}")

    def rows() -> Iterable[RawRow]:
        for i, rec in enumerate(frame.to_dict("records"), start=2):
            task = task_of(rec)
            spec = tasks.get(task)
            label: Any = None
            if spec is not None and spec.kind == MULTICLASS and label_col and cell(rec.get(label_col)) is not None:
                label = cell(rec[label_col])
            elif spec is not None and spec.kind != MULTICLASS and all(lab in rec for lab in spec.labels):
                label = [cell(rec[lab]) or "" for lab in spec.labels]
            rid = (cell(rec[id_col]) or "") if id_col else f"row-{i}"
            yield RawRow(row=i, id=rid, task=task, text=cell(rec[text_col]) or "", label=label, split="test")

    return build_dataset(path.name, str(path), tasks, rows(), skip_invalid)


def score_dataset(scorer: Any, ds: ScoringDataset, batch_size: int = 64) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """Scores as a table (id, task, prediction, p_<label>), plus the raw probability vectors."""
    from raykd.scoring import predictions
    from raykd.teacher.export import prob_columns

    f = ds.frame
    probs = scorer.predict_proba(f["text"].tolist(), f["task"].tolist(), f["question"].tolist(),
                                 f["reference"].tolist(), batch_size=batch_size)
    preds = predictions(scorer, f["task"].tolist(), probs)
    out = pd.DataFrame({"id": f["id"], "task": f["task"],
                        "prediction": [p if isinstance(p, str) else ";".join(p) for p in preds]})
    columns = prob_columns(scorer.layout)
    matrix = np.full((len(f), len(columns)), np.nan)
    for i, (task, p) in enumerate(zip(f["task"], probs, strict=True)):
        for lab, v in zip(scorer.layout.spec(task).labels, p, strict=True):
            matrix[i, columns.index(f"p_{lab}")] = v
    for j, c in enumerate(columns):
        out[c] = matrix[:, j]
    return out, probs


def gold_metrics(scorer: Any, ds: ScoringDataset, probs: list[np.ndarray]) -> dict[str, dict[str, float]]:
    out = {}
    f = ds.frame
    for task in sorted(set(f["task"])):
        mask = ((f["task"] == task) & f["y"].notna()).to_numpy()
        if mask.any():
            spec = scorer.layout.spec(task)
            p = np.stack([probs[i] for i in np.flatnonzero(mask)])
            out[task] = evaluate(p, np.asarray(f.loc[mask, "y"].tolist()), spec, scorer.thresholds.get(task))
    return out


def predict_file(model: str, input_path: str, output_path: str, tracking_uri: str | None = None,
                 skip_invalid: bool = False, batch_size: int = 64) -> dict[str, dict[str, float]]:
    from raykd.scoring import load_scorer

    scorer = load_scorer(model, tracking_uri)
    ds = read_for_scoring(input_path, scorer.layout, skip_invalid)
    if ds.problems:
        print(f"skipped {len(ds.problems)} invalid row(s); first: {ds.problems[0]}")
    scored, probs = score_dataset(scorer, ds, batch_size)
    write_table_atomic(scored, output_path)
    print(f"scored {len(scored)} responses with the {scorer.kind} at {model} -> {output_path}")
    metrics = gold_metrics(scorer, ds, probs)
    if metrics:
        prim = []
        for task, m in metrics.items():
            key = primary(scorer.layout.spec(task))
            prim.append(m[key])
            print(f"  {task:16s} " + " ".join(f"{k}={v:.4f}" for k, v in m.items() if not k.startswith("f1_")))
        print(f"  mean {key}: {np.mean(prim):.4f}")
    return metrics
