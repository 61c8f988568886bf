"""Join a teacher's exported soft labels onto a dataset, with a clear error for every mismatch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from raykd.data import ScoringDataset
from raykd.errors import DataError
from raykd.heads import TaskLayout
from raykd.teacher.export import read_soft_labels, text_digest

SUM_TOLERANCE = 1e-3


def attach_soft_labels(ds: ScoringDataset, path: str | Path, require_all: bool = True) -> pd.DataFrame:
    """The dataset's rows plus a `soft` column: the teacher's probability vector for that response.

    Every labelled row must have teacher probabilities (unlabelled rows may lack them when
    `require_all` is false); the teacher's label layout must equal the dataset's; multi-class vectors
    must sum to 1; and the text must be the one the teacher scored (by digest).
    """
    path = str(path)
    soft, meta = read_soft_labels(path)
    teacher_layout = TaskLayout.from_list(meta.get("tasks", []))
    for name, spec in ds.tasks.items():
        if name not in teacher_layout.names:
            raise DataError(path, f"the teacher did not score task {name!r} (it has {teacher_layout.names})")
        theirs = teacher_layout.spec(name)
        if theirs.labels != spec.labels or theirs.kind != spec.kind:
            raise DataError(path, f"task {name!r}: the teacher has {len(theirs.labels)} {theirs.kind} labels "
                                  f"{list(theirs.labels)}, the data has {len(spec.labels)} {list(spec.labels)}")
    if not soft["id"].is_unique:
        raise DataError(path, f"duplicate response ids, e.g. {soft['id'][soft['id'].duplicated()].iloc[0]!r}")
    soft = soft.set_index("id")
    frame = ds.frame.copy()
    present = frame["id"].isin(soft.index)
    needed = frame["y"].notna() | require_all
    missing = frame.loc[needed & ~present, "id"]
    if len(missing):
        raise DataError(path, f"{len(missing)} response id(s) have no teacher probabilities, e.g. "
                              f"{missing.head(3).tolist()}")
    vectors: list[np.ndarray | None] = []
    for rid, task, text in zip(frame["id"], frame["task"], frame["text"], strict=True):
        if rid not in soft.index:
            vectors.append(None)
            continue
        row = soft.loc[rid]
        if row["task"] != task:
            raise DataError(path, f"response {rid!r}: teacher row is for task {row['task']!r}, data says {task!r}")
        if row["text_sha256"] != text_digest(text):
            raise DataError(path, f"response {rid!r}: its text differs from the text the teacher scored")
        spec = ds.tasks[task]
        vec = row[[f"p_{lab}" for lab in spec.labels]].to_numpy(dtype=np.float64)
        if not np.isfinite(vec).all() or (vec < 0).any() or (vec > 1).any():
            raise DataError(path, f"response {rid!r}: probabilities {vec.tolist()} are not in [0, 1]")
        if spec.kind == "multiclass" and abs(vec.sum() - 1.0) > SUM_TOLERANCE:
            raise DataError(path, f"response {rid!r}: multi-class probabilities sum to {vec.sum():.4f}, not 1")
        vectors.append(vec.astype(np.float32))
    frame["soft"] = vectors
    return frame
