"""The one in-memory form of a scoring dataset.

A dataset is a table of responses plus the rubric tasks they answer. Each row is one response:

    id, task, text, question, reference, y, split

`y` is the gold label: for a multi-class task the class index (an ordinal score 0..K is its own index),
for a multi-label task a tuple of 0/1 flags (one per rubric label), and None when unscored. `split` is
one of train / validation / test / unlabelled. Readers build datasets through `build_dataset`, which
validates every row and either raises a `DataError` naming file, row and reason or, with
`skip_invalid`, drops the row and records why.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from raykd.errors import DataError

MULTICLASS = "multiclass"
MULTILABEL = "multilabel"
TaskKind = Literal["multiclass", "multilabel"]
SPLITS = ("train", "validation", "test", "unlabelled")
COLUMNS = ("id", "task", "text", "question", "reference", "y", "split")


@dataclass(frozen=True)
class TaskSpec:
    """A rubric task: its name, kind and label names (class names, or binary rubric criteria)."""

    name: str
    kind: TaskKind
    labels: tuple[str, ...]
    ordinal: bool = False

    def __post_init__(self) -> None:
        if self.kind not in (MULTICLASS, MULTILABEL):
            raise ValueError(f"task {self.name!r}: kind must be {MULTICLASS!r} or {MULTILABEL!r}, got {self.kind!r}")
        if len(self.labels) < (2 if self.kind == MULTICLASS else 1):
            raise ValueError(f"task {self.name!r}: too few labels {self.labels!r}")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"task {self.name!r}: duplicate label names {self.labels!r}")

    @property
    def num_outputs(self) -> int:
        return len(self.labels)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "labels": list(self.labels), "ordinal": self.ordinal}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TaskSpec:
        return cls(name=d["name"], kind=d["kind"], labels=tuple(d["labels"]), ordinal=bool(d.get("ordinal")))


@dataclass(frozen=True)
class Problem:
    """One invalid row found while reading: where it is and why it is invalid."""

    path: str
    row: int | None
    reason: str

    def __str__(self) -> str:
        return f"{self.path}, row {self.row}: {self.reason}" if self.row is not None else f"{self.path}: {self.reason}"


@dataclass
class ScoringDataset:
    name: str
    tasks: dict[str, TaskSpec]
    frame: pd.DataFrame
    problems: list[Problem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.frame)

    def task_names(self) -> list[str]:
        return list(self.tasks)

    def subset(self, mask: pd.Series | np.ndarray, name: str | None = None) -> ScoringDataset:
        frame = self.frame[np.asarray(mask, dtype=bool)].reset_index(drop=True)
        used = [t for t in self.tasks if t in set(frame["task"])]
        return ScoringDataset(name or self.name, {t: self.tasks[t] for t in used}, frame, list(self.problems))

    def split(self, name: str) -> ScoringDataset:
        return self.subset(self.frame["split"] == name, f"{self.name}:{name}")

    def for_tasks(self, names: Iterable[str]) -> ScoringDataset:
        names = list(names)
        unknown = [n for n in names if n not in self.tasks]
        if unknown:
            raise DataError(self.name, f"unknown task(s) {unknown}; this dataset has {list(self.tasks)}")
        return self.subset(self.frame["task"].isin(names))

    def labelled(self) -> ScoringDataset:
        return self.subset(self.frame["y"].notna())

    def targets(self, task: str) -> np.ndarray:
        """Gold labels of one task's labelled rows: int vector (multi-class) or 0/1 matrix (multi-label)."""
        spec = self.tasks[task]
        ys = [y for t, y in zip(self.frame["task"], self.frame["y"], strict=True) if t == task and y is not None]
        if spec.kind == MULTICLASS:
            return np.asarray(ys, dtype=np.int64)
        return np.asarray(ys, dtype=np.int64).reshape(len(ys), spec.num_outputs)

    def digest(self) -> str:
        """sha256 of the tasks and every row's content (order-independent); the dataset's identity in lineage."""
        h = hashlib.sha256()
        h.update(json.dumps([self.tasks[t].to_dict() for t in sorted(self.tasks)], sort_keys=True).encode())
        ordered = self.frame.sort_values(["task", "id"], kind="stable")
        for row in ordered[list(COLUMNS)].itertuples(index=False):
            h.update(json.dumps([_plain(v) for v in row], ensure_ascii=False).encode())
            h.update(b"\n")
        return h.hexdigest()

    def summary(self) -> dict[str, Any]:
        """Counts per task and split, and the label distribution of each task's labelled rows."""
        out: dict[str, Any] = {"name": self.name, "responses": len(self.frame), "tasks": {}}
        for name, spec in self.tasks.items():
            rows = self.frame[self.frame["task"] == name]
            dist: dict[str, int]
            labelled = [y for y in rows["y"] if y is not None]
            if spec.kind == MULTICLASS:
                counts = Counter(int(y) for y in labelled)
                dist = {spec.labels[i]: counts.get(i, 0) for i in range(spec.num_outputs)}
            else:
                arr = np.asarray(labelled, dtype=np.int64).reshape(len(labelled), spec.num_outputs)
                dist = {lab: int(arr[:, i].sum()) for i, lab in enumerate(spec.labels)}
            out["tasks"][name] = {
                "kind": spec.kind,
                "labels": list(spec.labels),
                "splits": {s: int(n) for s, n in rows["split"].value_counts().sort_index().items()},
                "labelled": len(labelled),
                "label_distribution": dist,
            }
        return out


def _plain(v: Any) -> Any:
    if isinstance(v, tuple | list | np.ndarray):
        return [int(x) for x in v]
    if isinstance(v, np.integer):
        return int(v)
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    return v


@dataclass
class RawRow:
    """A row as a reader found it, before validation. `label` is the raw string(s) or None (unscored)."""

    row: int
    id: str
    task: str
    text: str
    label: str | list[str] | None
    split: str = "train"
    question: str | None = None
    reference: str | None = None


def parse_label(spec: TaskSpec, raw: str | list[str]) -> int | tuple[int, ...]:
    """Turn a raw label into `y`; raise ValueError with a user-facing reason if it does not fit the task."""
    if spec.kind == MULTICLASS:
        value = str(raw).strip()
        if not value:
            raise ValueError(f"missing label for task {spec.name!r}")
        if value in spec.labels:
            return spec.labels.index(value)
        # "2.0" from a float column is still the score 2.
        try:
            as_int = str(int(float(value)))
        except ValueError:
            as_int = None
        if as_int is not None and as_int in spec.labels:
            return spec.labels.index(as_int)
        raise ValueError(f"label {value!r} out of range for task {spec.name!r} (allowed: {', '.join(spec.labels)})")
    values = list(raw)
    if len(values) != spec.num_outputs:
        raise ValueError(f"task {spec.name!r} expects {spec.num_outputs} labels, got {len(values)}")
    flags = []
    for name, v in zip(spec.labels, values, strict=True):
        s = str(v).strip()
        if s in ("0", "1", "0.0", "1.0"):
            flags.append(int(float(s)))
        else:
            raise ValueError(f"label {name!r} must be 0 or 1, got {s!r}")
    return tuple(flags)


def build_dataset(
    name: str,
    path: str,
    tasks: Mapping[str, TaskSpec],
    rows: Iterable[RawRow],
    skip_invalid: bool = False,
) -> ScoringDataset:
    """Validate raw rows into a dataset. Invalid rows raise, or are dropped and recorded with `skip_invalid`."""
    problems: list[Problem] = []
    records: list[tuple] = []
    seen: dict[str, int] = {}
    for r in rows:
        reason = None
        spec = tasks.get(r.task)
        y: Any = None
        if not str(r.id).strip():
            reason = "empty id"
        elif r.id in seen:
            reason = f"duplicate id {r.id!r} (first seen in row {seen[r.id]})"
        elif spec is None:
            reason = f"unknown task {r.task!r} (known: {', '.join(tasks)})"
        elif r.text is None or not str(r.text).strip():
            reason = f"empty text for id {r.id!r}"
        elif r.split not in SPLITS:
            reason = f"unknown split {r.split!r}"
        elif r.label is not None:
            try:
                y = parse_label(spec, r.label)
            except ValueError as e:
                reason = str(e)
        if reason is not None:
            problem = Problem(path, r.row, reason)
            if not skip_invalid:
                raise DataError(path, reason + "  (pass --skip-invalid to drop invalid rows)", row=r.row)
            problems.append(problem)
            continue
        seen[r.id] = r.row
        records.append((str(r.id), r.task, str(r.text), r.question, r.reference, y, r.split))
    frame = pd.DataFrame.from_records(records, columns=list(COLUMNS))
    frame["y"] = frame["y"].astype(object)
    frame["y"] = [None if (y is None or (isinstance(y, float) and np.isnan(y))) else y for y in frame["y"]]
    used = {t: s for t, s in tasks.items() if t in set(frame["task"])}
    if not used:
        raise DataError(path, "no valid responses found")
    return ScoringDataset(name, dict(used), frame, problems)


def concat(datasets: list[ScoringDataset], name: str) -> ScoringDataset:
    """Join datasets of distinct tasks (e.g. several ASAP-SAS prompts) into one multi-task dataset."""
    tasks: dict[str, TaskSpec] = {}
    for ds in datasets:
        for t, spec in ds.tasks.items():
            if t in tasks and tasks[t] != spec:
                raise DataError(name, f"task {t!r} defined differently by two sources")
            tasks[t] = spec
    frame = pd.concat([ds.frame for ds in datasets], ignore_index=True)
    dup = frame["id"].duplicated(keep=False)
    if dup.any():
        raise DataError(name, f"duplicate response ids across sources, e.g. {frame['id'][dup].iloc[0]!r}")
    return ScoringDataset(name, tasks, frame, [p for ds in datasets for p in ds.problems])


def problems_report(problems: list[Problem]) -> dict[str, int]:
    """How many rows were dropped, by reason (ids and values stripped so reasons group)."""
    counts: Counter[str] = Counter()
    for p in problems:
        counts[p.reason.split(" for id ")[0].split(" (first seen")[0].split("'")[0].strip()] += 1
    return dict(counts)
