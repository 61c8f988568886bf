"""Soft-label export: the trained teacher's probabilities for every response, the students' targets.

Batch inference runs on Ray Data (`map_batches` over an actor pool that loads the artifact once per
actor; GPUs per actor from the config). The result is one Parquet file, written atomically, with
`id, task, split, text_sha256` and one `p_{label}` column per class/label (NaN where a task lacks that
label). The file's schema metadata carries the tasks, so a consumer can check the label layout.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from raykd.data.preparation import text_digests
from raykd.heads import TaskLayout
from raykd.io import atomic_path
from raykd.scoring import plain_columns, prob_columns, prob_matrix

META_KEY = b"raykd"
ID_COLUMNS = ["id", "task", "split", "text_sha256"]


class TeacherBatchPredictor:
    """A Ray Data callable class: loads the teacher once, scores pandas batches."""

    def __init__(self, model_dir: str, batch_size: int = 32):
        from raykd.storage import localize
        from raykd.teacher.artifact import TeacherScorer

        self.scorer = TeacherScorer(str(localize(model_dir)))  # this node's copy when the model is in a store
        self.batch_size = batch_size

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        probs = self.scorer.predict_proba(batch["text"].tolist(), batch["task"].tolist(),
                                          batch["question"].tolist(), batch["reference"].tolist(),
                                          batch_size=self.batch_size)
        return soft_label_rows(batch, probs, self.scorer.layout)


def soft_label_rows(batch: pd.DataFrame, probs: list[np.ndarray], layout: TaskLayout) -> pd.DataFrame:
    """`id, task, split, text_sha256, p_<label>...` for a batch of scored responses."""
    out = pd.DataFrame({"id": batch["id"].astype(str).to_numpy(), "task": batch["task"].to_numpy(),
                        "split": batch["split"].to_numpy(),
                        "text_sha256": text_digests(batch["text"])})
    matrix = prob_matrix(layout, batch["task"].tolist(), probs)
    for j, col in enumerate(prob_columns(layout)):
        out[col] = matrix[:, j]
    return out


def export_soft_labels(model_dir: str | Path, frame: pd.DataFrame, out_path: str | Path,
                       batch_size: int = 64, num_cpus: float = 1.0, num_gpus: float = 0.0,
                       concurrency: int = 1, metadata: dict[str, Any] | None = None,
                       model_location: str | None = None) -> pd.DataFrame:
    """Score `frame` with the teacher on Ray Data and write the Parquet file atomically. `model_dir` is the
    driver's folder; `model_location` (default: the same) is where the actors, on any node, read it."""
    import ray

    from raykd.teacher.artifact import MANIFEST

    layout = TaskLayout.from_list(json.loads((Path(model_dir) / MANIFEST).read_text())["tasks"])
    cols = ["id", "task", "text", "question", "reference", "split"]
    source = frame[cols].copy()
    for c in ("question", "reference"):
        source[c] = source[c].astype(object).where(source[c].notna(), "")
    # Many small blocks, made here rather than by a repartition task: work spreads over the actor pool,
    # progress shows as blocks finish, and no extra task competes with the actors for a small cluster's CPUs.
    size = 4 * batch_size
    ds = ray.data.from_pandas([source.iloc[i:i + size] for i in range(0, max(1, len(source)), size)])
    scored = ds.map_batches(
        TeacherBatchPredictor,
        fn_constructor_kwargs={"model_dir": model_location or str(model_dir), "batch_size": batch_size},
        batch_size=batch_size, batch_format="pandas", compute=ray.data.ActorPoolStrategy(size=concurrency),
        num_cpus=num_cpus, num_gpus=num_gpus,
    )
    result = plain_columns(scored.to_pandas())
    order = {rid: i for i, rid in enumerate(frame["id"].astype(str))}
    result = result.sort_values("id", key=lambda s: s.map(order)).reset_index(drop=True)
    write_soft_labels(result, out_path, {"tasks": layout.to_list(), **(metadata or {})})
    return result


def write_soft_labels(frame: pd.DataFrame, path: str | Path, metadata: dict[str, Any]) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: json.dumps(metadata)})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def soft_label_scores(soft: pd.DataFrame, ds: Any, split: str, thresholds: dict[str, list[float]]) -> Any:
    """The teacher's per-task metrics on one split, from its exported probabilities (with bootstrap intervals
    on test)."""
    from raykd.evaluation import score_tasks

    layout = TaskLayout.of(ds.tasks)
    rows = soft[soft["split"] == split]
    gold = ds.frame.set_index("id")["y"]
    columns = {c: j for j, c in enumerate(prob_columns(layout))}
    matrix = rows[list(columns)].to_numpy(dtype=np.float64)
    probs = [matrix[i, [columns[f"p_{lab}"] for lab in layout.spec(t).labels]] for i, t in enumerate(rows["task"])]
    return score_tasks(probs, rows["task"].tolist(), gold.loc[rows["id"]].tolist(), layout, thresholds,
                       intervals=split == "test")


def read_soft_labels(path: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    table = pq.read_table(path)
    meta = json.loads((table.schema.metadata or {}).get(META_KEY, b"{}"))
    return table.to_pandas(), meta
