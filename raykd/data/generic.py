"""Any CSV/TSV/JSONL/Parquet file of responses, read through an explicit column mapping."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raykd.data.dataset import CONTINUOUS, MULTICLASS, MULTILABEL, RawRow, ScoringDataset, TaskSpec, build_dataset
from raykd.data.files import cell, read_table, require_columns
from raykd.errors import DataError


@dataclass(frozen=True)
class ColumnMap:
    """Which columns hold what. Give `label` (multi-class, or continuous: a float column) or `label_columns`
    (multi-label), or neither for unscored data. `task` is a column name; `task_name` a fixed task for the
    whole file."""

    text: str = "text"
    id: str | None = "id"
    task: str | None = None
    task_name: str = "default"
    label: str | None = None
    label_columns: tuple[str, ...] = ()
    question: str | None = None
    reference: str | None = None
    split: str | None = None


def read_generic(path: str | Path, columns: ColumnMap, labels: Sequence[str] | None = None,
                 ordinal: bool = False, skip_invalid: bool = False,
                 tasks: dict[str, TaskSpec] | None = None, default_split: str = "train",
                 continuous: Mapping[str, Any] | None = None) -> ScoringDataset:
    """Read `path` through `columns`. Multi-class label names are `labels`, or the sorted distinct values
    found (numeric order for scores). `continuous` ({low, high, step}) reads the label column as a score in
    that range instead. `tasks` (e.g. from a trained model) overrides all of these."""
    path = Path(path)
    if continuous is not None and (columns.label_columns or labels):
        raise DataError(str(path), "continuous scores come from one label column: drop label_columns and labels")
    frame = read_table(path)
    needed = [c for c in (columns.text, columns.id, columns.task, columns.label, columns.question,
                          columns.reference, columns.split) if c] + list(columns.label_columns)
    require_columns(frame, needed, path)
    task_of = (lambda rec: cell(rec[columns.task]) or "") if columns.task else (lambda rec: columns.task_name)
    records = frame.to_dict("records")
    if tasks is None:
        tasks = {}
        for name in sorted({task_of(r) for r in records} - {""}):
            if columns.label_columns:
                tasks[name] = TaskSpec(name, MULTILABEL, tuple(columns.label_columns))
            elif continuous is not None:
                tasks[name] = continuous_task(name, continuous, str(path))
            else:
                found = [cell(r[columns.label]) for r in records if task_of(r) == name] if columns.label else []
                names = list(labels) if labels else _sorted_labels({v for v in found if v is not None})
                if len(names) < 2:
                    raise DataError(str(path), f"task {name!r} needs at least 2 label values; found {names} "
                                               "(give the label names explicitly)")
                tasks[name] = TaskSpec(name, MULTICLASS, tuple(names), ordinal=ordinal)

    def rows() -> Iterable[RawRow]:
        for i, rec in enumerate(records, start=2):
            split = (cell(rec[columns.split]) or default_split) if columns.split else default_split
            if split == "unlabelled":  # unscored responses (for the teacher's soft labels, the review queue)
                label = None
            elif columns.label_columns:
                label = [cell(rec[c]) or "" for c in columns.label_columns]
            elif columns.label:
                label = cell(rec[columns.label]) or ""  # a labelled row may not have gaps
            else:
                label = None
            yield RawRow(
                row=i, id=(cell(rec[columns.id]) or "") if columns.id else f"{path.stem}-{i}",
                task=task_of(rec), text=cell(rec[columns.text]) or "", label=label, split=split,
                question=cell(rec[columns.question]) if columns.question else None,
                reference=cell(rec[columns.reference]) if columns.reference else None,
            )

    return build_dataset(path.name, str(path), tasks, rows(), skip_invalid)


def continuous_task(name: str, scale: Mapping[str, Any], where: str) -> TaskSpec:
    """A continuous task from a `{low, high, step}` mapping; a bad range is a DataError naming `where`."""
    unknown = sorted(set(scale) - {"low", "high", "step"})
    if unknown:
        raise DataError(where, f"continuous: unknown key {unknown[0]!r} (expected low, high and optionally step)")
    try:
        return TaskSpec(name, CONTINUOUS, low=_number(scale.get("low")), high=_number(scale.get("high")),
                        step=_number(scale.get("step")))
    except (TypeError, ValueError) as e:
        raise DataError(where, f"continuous: {e}") from None


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _sorted_labels(values: Iterable[str]) -> list[str]:
    values = list(values)
    try:
        return [str(v) for v in sorted(values, key=float)]
    except ValueError:
        return sorted(values)
