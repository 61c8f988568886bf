"""Join a teacher's exported soft labels onto a dataset, with a clear error for every mismatch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from raykd.data import ScoringDataset
from raykd.data.dataset import CONTINUOUS
from raykd.data.preparation import text_digest
from raykd.errors import DataError
from raykd.heads import TaskLayout
from raykd.teacher.export import read_soft_labels

SUM_TOLERANCE = 1e-3


def attach_soft_labels(ds: ScoringDataset, path: str | Path, require_all: bool = True,
                       source: str = "the teacher") -> pd.DataFrame:
    """The dataset's rows plus a `soft` column: the teacher's probability vector for that response.

    Every labelled row must have teacher probabilities (unlabelled rows may lack them when
    `require_all` is false); the teacher's label layout must equal the dataset's; multi-class vectors
    must sum to 1; the text must be the one the teacher scored (by digest), and the response must be in
    the same split as when the teacher scored it. Errors name `source`, the stage that made the labels.
    """
    soft, meta = read_soft_labels(path)
    where = f"{path} (soft labels from {source})"
    _check_layout(ds, TaskLayout.from_list(meta.get("tasks", [])), where)
    if not soft["id"].is_unique:
        raise DataError(where, f"duplicate response ids, e.g. {soft['id'][soft['id'].duplicated()].iloc[0]!r}")
    soft = soft.set_index("id")
    frame = ds.frame.copy()
    joined = frame[["id"]].join(soft[["task", "split", "text_sha256"]].rename(
        columns={"task": "t_task", "split": "t_split", "text_sha256": "t_text_sha256"}), on="id")
    present = joined["t_task"].notna().to_numpy()
    needed = (frame["y"].notna() | require_all).to_numpy()
    missing = frame.loc[needed & ~present, "id"]
    if len(missing):
        raise DataError(where, f"{len(missing)} response id(s) have no teacher probabilities, e.g. "
                              f"{missing.head(3).tolist()}")
    wrong_task = present & (joined["t_task"] != frame["task"]).to_numpy()
    if wrong_task.any():
        i = int(np.flatnonzero(wrong_task)[0])
        raise DataError(where, f"response {frame['id'].iloc[i]!r}: teacher row is for task "
                              f"{joined['t_task'].iloc[i]!r}, data says {frame['task'].iloc[i]!r}")
    moved = present & (joined["t_split"] != frame["split"]).to_numpy()
    if moved.any():
        i = int(np.flatnonzero(moved)[0])
        raise DataError(where, f"response {frame['id'].iloc[i]!r} was scored as {joined['t_split'].iloc[i]!r} but is "
                              f"{frame['split'].iloc[i]!r} here: the soft labels were made from another split")
    if "text_sha256" in frame:  # hashed when the stage read the prepared data (raykd.data.preparation.reuse)
        digests = np.where(present, frame["text_sha256"].to_numpy(dtype=object), "")
    else:
        digests = np.array([text_digest(t) if p else "" for t, p in zip(frame["text"], present, strict=True)])
    changed = present & (digests != joined["t_text_sha256"].fillna("").to_numpy())
    if changed.any():
        rid = frame["id"].iloc[int(np.flatnonzero(changed)[0])]
        raise DataError(where, f"response {rid!r}: its text differs from the text the teacher scored")
    vectors = _vectors(ds, frame, soft, present, where)
    frame["soft"] = vectors
    return frame


def _check_layout(ds: ScoringDataset, teacher_layout: TaskLayout, where: str) -> None:
    """Every task of the dataset scored by the teacher, with the same kind and labels."""
    for name, spec in ds.tasks.items():
        if name not in teacher_layout.names:
            raise DataError(where, f"the teacher did not score task {name!r} (it has {teacher_layout.names})")
        theirs = teacher_layout.spec(name)
        if theirs.labels != spec.labels or theirs.kind != spec.kind:
            raise DataError(where, f"task {name!r}: the teacher has {len(theirs.labels)} {theirs.kind} labels "
                                  f"{list(theirs.labels)}, the data has {len(spec.labels)} {list(spec.labels)}")


def _vectors(ds: ScoringDataset, frame: pd.DataFrame, soft: pd.DataFrame, present: np.ndarray, where: str
             ) -> list[np.ndarray | None]:
    """Each present row's probability vector over its task's labels, checked to be probabilities."""
    vectors: list[np.ndarray | None] = [None] * len(frame)
    for task, spec in ds.tasks.items():
        rows = np.flatnonzero(present & (frame["task"] == task).to_numpy())
        if not len(rows):
            continue
        block = soft.loc[frame["id"].iloc[rows], [f"p_{lab}" for lab in spec.labels]].to_numpy(dtype=np.float64)
        if spec.kind == CONTINUOUS:  # (mean, sd): a finite score and a positive spread
            bad = ~np.isfinite(block).all(1) | (block[:, 1] <= 0)
            what = "is not a finite mean and a positive sd"
        else:
            bad = ~np.isfinite(block).all(1) | (block < 0).any(1) | (block > 1).any(1)
            what = "are not in [0, 1]"
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise DataError(where, f"response {frame['id'].iloc[rows[k]]!r}: probabilities {block[k].tolist()} "
                                  + what)
        if spec.kind == "multiclass":
            sums = block.sum(1)
            off = np.abs(sums - 1.0) > SUM_TOLERANCE
            if off.any():
                k = int(np.flatnonzero(off)[0])
                raise DataError(where, f"response {frame['id'].iloc[rows[k]]!r}: multi-class probabilities sum to "
                                      f"{sums[k]:.4f}, not 1")
        for r, vec in zip(rows, block.astype(np.float32), strict=True):
            vectors[r] = vec
    return vectors
