"""The one in-memory form of a scoring dataset.

A dataset is a table of responses plus the rubric tasks they answer. Each row is one response:

    id, task, text, question, reference, y, split

`y` is the gold label: for a multi-class task the class index (an ordinal score 0..K is its own index),
for a multi-label task a tuple of 0/1 flags (one per rubric label), for a continuous task the score itself
(a float in the task's range, on its step where it has one), and None when unscored. `split` is
one of train / validation / test / unlabelled. Readers build datasets through `build_dataset`, which
validates every row and either raises a `DataError` naming file, row and reason or, with
`skip_invalid`, drops the row and records why.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import numpy as np
import pandas as pd

from raykd.errors import DataError

MULTICLASS = "multiclass"
MULTILABEL = "multilabel"
CONTINUOUS = "continuous"
KINDS = (MULTICLASS, MULTILABEL, CONTINUOUS)
TaskKind = Literal["multiclass", "multilabel", "continuous"]
# A continuous task's model outputs: the predicted score and its spread (a standard deviation), in score units.
CONTINUOUS_OUTPUTS = ("mean", "sd")
SPLITS = ("train", "validation", "test", "unlabelled")
SKIP_HINT = "  (pass --skip-invalid to drop invalid rows)"
COLUMNS = ("id", "task", "text", "question", "reference", "y", "split")


@dataclass(frozen=True)
class TaskSpec:
    """A rubric task: its name, kind and label names (class names, or binary rubric criteria). A continuous
    task has a score range [low, high] and an optional step (0.5: scores in halves); its two "labels" are the
    outputs a model gives for it, the predicted score and its spread (`CONTINUOUS_OUTPUTS`)."""

    name: str
    kind: TaskKind
    labels: tuple[str, ...] = ()
    ordinal: bool = False
    low: float | None = None
    high: float | None = None
    step: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"task {self.name!r}: kind must be one of {', '.join(map(repr, KINDS))}, "
                             f"got {self.kind!r}")
        if self.kind == CONTINUOUS:
            self._check_range()
            return
        if len(self.labels) < (2 if self.kind == MULTICLASS else 1):
            raise ValueError(f"task {self.name!r}: too few labels {self.labels!r}")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"task {self.name!r}: duplicate label names {self.labels!r}")

    def _check_range(self) -> None:
        object.__setattr__(self, "labels", CONTINUOUS_OUTPUTS)
        if self.low is None or self.high is None or not float(self.low) < float(self.high):
            raise ValueError(f"task {self.name!r}: a continuous task needs a range low < high, "
                             f"got low={self.low!r} high={self.high!r}")
        object.__setattr__(self, "low", float(self.low))
        object.__setattr__(self, "high", float(self.high))
        if self.step is not None:
            steps = (self.high - self.low) / float(self.step)
            if not float(self.step) > 0 or abs(steps - round(steps)) > 1e-6:
                raise ValueError(f"task {self.name!r}: step {self.step!r} must be positive and divide the range "
                                 f"[{self.low:g}, {self.high:g}]")
            object.__setattr__(self, "step", float(self.step))

    @property
    def num_outputs(self) -> int:
        return len(self.labels)

    @property
    def ranged(self) -> bool:
        """Whether a set of this task's scores reads as a range (ordinal and continuous scores)."""
        return self.ordinal or self.kind == CONTINUOUS

    @property
    def width(self) -> float:
        """A continuous task's score range, high - low (the unit its models learn in)."""
        return float(self.high) - float(self.low)  # type: ignore[arg-type]

    def snap(self, values: Any) -> np.ndarray:
        """Continuous scores clipped to the range and rounded to the step (when the task has one)."""
        v = np.clip(np.asarray(values, dtype=np.float64), self.low, self.high)
        return v if self.step is None else np.round((v - self.low) / self.step) * self.step + self.low

    def steps(self, values: Any) -> np.ndarray:
        """Continuous scores as step indices 0..K (rounded to the step, or to whole points without one): the
        classes QWK compares."""
        return np.round((self.snap(values) - self.low) / (self.step or 1.0)).astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "kind": self.kind, "labels": list(self.labels), "ordinal": self.ordinal}
        if self.kind == CONTINUOUS:
            out.update(low=self.low, high=self.high, step=self.step)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TaskSpec:
        return cls(name=d["name"], kind=d["kind"], labels=tuple(d.get("labels") or ()), ordinal=bool(d.get("ordinal")),
                   low=d.get("low"), high=d.get("high"), step=d.get("step"))


@dataclass(frozen=True)
class Problem:
    """One invalid row found while reading: where it is and why it is invalid."""

    path: str
    row: int | None
    reason: str
    unit: str = "row"  # how the file counts: rows of a table, lines of a 3-line sequence file

    def __str__(self) -> str:
        return f"{self.path}, {self.unit} {self.row}: {self.reason}" if self.row is not None else \
            f"{self.path}: {self.reason}"


@dataclass
class ScoringDataset:
    name: str
    tasks: dict[str, TaskSpec]
    frame: pd.DataFrame
    problems: list[Problem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.frame)

    def subset(self, mask: pd.Series | np.ndarray, name: str | None = None) -> ScoringDataset:
        frame = self.frame[np.asarray(mask, dtype=bool)].reset_index(drop=True)
        used = [t for t in self.tasks if t in set(frame["task"])]
        return ScoringDataset(name or self.name, {t: self.tasks[t] for t in used}, frame, list(self.problems))

    def split(self, name: str) -> ScoringDataset:
        return self.subset(self.frame["split"] == name, f"{self.name}:{name}")

    def targets(self, task: str) -> np.ndarray:
        """Gold labels of one task's labelled rows: int vector (multi-class), 0/1 matrix (multi-label) or float
        vector (continuous)."""
        spec = self.tasks[task]
        ys = [y for t, y in zip(self.frame["task"], self.frame["y"], strict=True) if t == task and y is not None]
        if spec.kind == MULTICLASS:
            return np.asarray(ys, dtype=np.int64)
        if spec.kind == CONTINUOUS:
            return np.asarray(ys, dtype=np.float64)
        return np.asarray(ys, dtype=np.int64).reshape(len(ys), spec.num_outputs)

    def digest(self) -> str:
        """sha256 of the tasks and every row's content (order-independent); the dataset's identity in lineage.
        It reads every row: a stage computes it once and passes it on."""
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
            elif spec.kind == CONTINUOUS:
                counts = Counter(float(y) for y in labelled)
                dist = {f"{v:g}": counts[v] for v in sorted(counts)}
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
    if isinstance(v, np.floating):
        return float(v)
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


def parse_label(spec: TaskSpec, raw: str | list[str]) -> int | float | tuple[int, ...]:
    """Turn a raw label into `y`; raise ValueError with a user-facing reason if it does not fit the task."""
    if spec.kind == CONTINUOUS:
        return parse_score(spec, raw)
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


def parse_score(spec: TaskSpec, raw: Any) -> float:
    """A continuous task's score: a finite number in [low, high], on the task's step when it has one."""
    value = str(raw).strip()
    if not value:
        raise ValueError(f"missing score for task {spec.name!r}")
    try:
        score = float(value)
    except ValueError:
        raise ValueError(f"score {value!r} for task {spec.name!r} is not a number") from None
    allowed = f"[{spec.low:g}, {spec.high:g}]" + (f" in steps of {spec.step:g}" if spec.step else "")
    if not np.isfinite(score) or not spec.low <= score <= spec.high:  # type: ignore[operator]
        raise ValueError(f"score {value!r} out of range for task {spec.name!r} (allowed: {allowed})")
    if spec.step and abs(float(spec.snap(score)) - score) > 1e-6:
        raise ValueError(f"score {value!r} is not on the step of task {spec.name!r} (allowed: {allowed})")
    return score


@dataclass
class RawColumns:
    """Rows as a reader found them, column by column: the form `build_dataset` validates. Readers that walk a
    file row by row yield `RawRow`s (see `from_rows`); table readers build columns directly."""

    row: Sequence[int]
    id: Sequence[str]
    task: Sequence[str]
    text: Sequence[str]
    label: Sequence[str | list[str] | None]
    split: Sequence[str]
    question: Sequence[str | None]
    reference: Sequence[str | None]

    @classmethod
    def from_rows(cls, rows: Iterable[RawRow]) -> RawColumns:
        items = list(rows)
        return cls(*(tuple(getattr(r, f.name) for r in items) for f in fields(cls)))


def _strings(values: Sequence[Any]) -> pd.Series:
    """Values as a string Series (missing values as ""), without a copy when they already are one."""
    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    if series.dtype != "str":
        series = series.astype(object).where(series.notna(), "").astype(str)
    return series.fillna("").reset_index(drop=True)


def _labels(labels: Sequence[Any], task: pd.Series, tasks: Mapping[str, TaskSpec], rows: np.ndarray
            ) -> tuple[list[Any], dict[int, str]]:
    """Each of `rows`' parsed label (None where absent), and why the labels that do not fit their task fail."""
    y: list[Any] = [None] * len(labels)
    reasons: dict[int, str] = {}
    for i in rows:
        if labels[i] is not None:
            try:
                y[i] = parse_label(tasks[task.iat[i]], labels[i])
            except ValueError as e:
                reasons[int(i)] = str(e)
    return y, reasons


def build_dataset(
    name: str,
    path: str,
    tasks: Mapping[str, TaskSpec],
    rows: Iterable[RawRow] | RawColumns,
    skip_invalid: bool = False,
    allow_empty: bool = False,
) -> ScoringDataset:
    """Validate raw rows into a dataset. Invalid rows raise, or are dropped and recorded with `skip_invalid`.
    An empty result is an error unless `allow_empty` (one batch of a streamed file may hold no valid row).

    A row is checked in this order, and its first failure is its reason: empty id; an id already used by an
    earlier valid row; unknown task; empty text; unknown split; a label that does not fit the task. The checks
    run column-wise; only labels are parsed one by one.
    """
    cols = rows if isinstance(rows, RawColumns) else RawColumns.from_rows(rows)
    n = len(cols.row)
    row = np.asarray(cols.row, dtype=np.int64)
    ids, task, text, split = (_strings(c) for c in (cols.id, cols.task, cols.text, cols.split))
    empty_id = ids.str.strip().eq("").to_numpy()
    known = task.isin(list(tasks)).to_numpy()
    empty_text = text.str.strip().eq("").to_numpy()
    bad_split = (~split.isin(SPLITS)).to_numpy()
    y, label_reason = _labels(cols.label, task, tasks, np.flatnonzero(~(empty_id | ~known | empty_text | bad_split)))
    bad_label = np.zeros(n, dtype=bool)
    bad_label[list(label_reason)] = True
    # An id is taken by its first otherwise-valid row; any later row with that id is a duplicate.
    other_ok = ~(empty_id | ~known | empty_text | bad_split | bad_label)
    position = np.arange(n)
    first = pd.Series(np.where(other_ok, position, n)).groupby(ids.to_numpy()).transform("min").to_numpy()
    duplicate = ~empty_id & (first < position)
    valid = other_ok & ~duplicate
    problems: list[Problem] = []
    for i in np.flatnonzero(~valid):
        rid = ids.iat[i]
        reasons = (empty_id[i] and "empty id",
                   duplicate[i] and f"duplicate id {rid!r} (first seen in row {row[first[i]]})",
                   not known[i] and f"unknown task {task.iat[i]!r} (known: {', '.join(tasks)})",
                   empty_text[i] and f"empty text for id {rid!r}",
                   bad_split[i] and f"unknown split {split.iat[i]!r}")
        reason = next((r for r in reasons if r), None) or label_reason[int(i)]
        if not skip_invalid:
            raise DataError(path, reason + SKIP_HINT, row=int(row[i]))
        problems.append(Problem(path, int(row[i]), reason))
    keep = np.flatnonzero(valid)
    frame = pd.DataFrame({
        "id": ids.to_numpy()[keep], "task": task.to_numpy()[keep], "text": text.to_numpy()[keep],
        "question": pd.Series(cols.question, dtype=object).to_numpy()[keep],
        "reference": pd.Series(cols.reference, dtype=object).to_numpy()[keep],
        "y": pd.Series([y[i] for i in keep], dtype=object), "split": split.to_numpy()[keep],
    }, columns=list(COLUMNS))
    frame["y"] = frame["y"].astype(object)
    used = {t: spec for t, spec in tasks.items() if t in set(frame["task"])}
    if not used and not allow_empty:
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
