"""Rows to score: which columns hold what, each row validated as every scoring path validates it (the whole
file, the stream, the upload, the MLflow model), and the scores table they all write."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raykd.data.dataset import CONTINUOUS, MULTICLASS, MULTILABEL, RawColumns, ScoringDataset, build_dataset
from raykd.data.files import read_table
from raykd.errors import DataError
from raykd.evaluation import evaluate
from raykd.heads import TaskLayout


def cells(column: pd.Series) -> pd.Series:
    """A column as `raykd.data.files.cell` reads each value: stripped strings, "" where empty."""
    if column.dtype != "str":
        column = column.astype(object).where(column.notna(), "").astype(str)
    return column.fillna("").str.strip()


def column_plan(columns: Iterable[str], layout: TaskLayout, path: str | Path
                ) -> tuple[str | None, str, str | None, Callable[[pd.DataFrame], pd.Series]]:
    """Which columns hold the id, text and label, and each row's task. Understands ASAP-SAS columns
    (`Id, EssaySet, EssayText[, Score1]`) and `id, task, text[, label]`; a one-task model needs no task
    column. Optional `question` and `reference` columns go to question-aware models."""
    cols = set(columns)
    tasks = layout.names
    if {"EssaySet", "EssayText"} <= cols:
        def asap_task(frame: pd.DataFrame) -> pd.Series:
            return "asap_" + cells(frame["EssaySet"]).replace("", "None")

        return "Id", "EssayText", "Score1" if "Score1" in cols else None, asap_task
    if "text" in cols:
        if "task" not in cols and len(tasks) != 1:
            raise DataError(str(path), f"missing column 'task' (this model serves {tasks})")

        def task_of(frame: pd.DataFrame) -> pd.Series:
            return cells(frame["task"]) if "task" in frame else pd.Series([tasks[0]] * len(frame), dtype="str")

        return ("id" if "id" in cols else None), "text", ("label" if "label" in cols else None), task_of
    raise DataError(str(path), f"expected columns Id/EssaySet/EssayText or id/task/text; found {sorted(cols)}")


def optional_column(frame: pd.DataFrame, name: str) -> list[str | None]:
    """A question-aware model's `question` / `reference` column (empty cells None); all None when absent."""
    if name not in frame.columns:
        return [None] * len(frame)
    return [v or None for v in cells(frame[name])]


def scoring_dataset(frame: pd.DataFrame, layout: TaskLayout, path: str | Path, skip_invalid: bool = False,
                    rows: Iterable[int] | None = None, allow_empty: bool = False) -> ScoringDataset:
    """Validate a table of responses to score (see `column_plan`). `rows` are the file's row numbers of the
    frame's rows (default 2, 3, ...: the header is row 1). Gold labels, when present, are kept for metrics."""
    id_col, text_col, label_col, task_of = column_plan(frame.columns, layout, path)
    frame = frame.reset_index(drop=True)
    numbers = list(range(2, 2 + len(frame)) if rows is None else rows)
    tasks = task_of(frame)
    labels: list[Any] = [None] * len(frame)
    for spec in layout.tasks:
        mine = np.flatnonzero((tasks == spec.name).to_numpy())
        if spec.kind in (MULTICLASS, CONTINUOUS) and label_col:
            values = cells(frame[label_col])
            for i in mine:
                labels[i] = values.iat[i] or None
        elif spec.kind == MULTILABEL and all(lab in frame.columns for lab in spec.labels):
            flags = [cells(frame[lab]) for lab in spec.labels]
            for i in mine:
                labels[i] = [f.iat[i] for f in flags]
    ids = cells(frame[id_col]) if id_col else pd.Series([f"row-{n}" for n in numbers], dtype="str")
    columns = RawColumns(row=numbers, id=ids, task=tasks, text=cells(frame[text_col]), label=labels,
                         split=pd.Series(["test"] * len(frame), dtype="str"),
                         question=optional_column(frame, "question"), reference=optional_column(frame, "reference"))
    return build_dataset(Path(path).name, str(path), {t.name: t for t in layout.tasks}, columns, skip_invalid,
                         allow_empty=allow_empty)


def read_for_scoring(path: str | Path, layout: TaskLayout, skip_invalid: bool = False) -> ScoringDataset:
    """A whole file of responses to score, for a model serving `layout` (uploads: raykd.serve.upload)."""
    return scoring_dataset(read_table(path), layout, path, skip_invalid)


def score_dataset(scorer: Any, ds: ScoringDataset, batch_size: int = 64) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """Scores as a table (id, task, prediction, p_<label>), plus the raw probability vectors."""
    from raykd.scoring import scores_frame

    f = ds.frame
    tasks = f["task"].tolist()
    probs = scorer.predict_proba(f["text"].tolist(), tasks, f["question"].tolist(), f["reference"].tolist(),
                                 batch_size=batch_size)
    return scores_frame(scorer, f["id"].tolist(), tasks, probs), probs


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
