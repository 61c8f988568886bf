"""People's corrections flowing back into the data (`raykd feedback`).

A school's assessment lead grades responses the model was unsure of (`raykd review-queue`) or corrects scores it
got wrong. `run_feedback` checks a corrections file against the data the model learnt from and records it as
a new version of that dataset; a later teacher or distill run trains on a version with
`data.corrections: <store>/vNNNN` (raykd.data.preparation applies it when it reads the data).

A corrections store holds one folder per version, each complete (it carries every earlier correction, and a
later correction of a response replaces the earlier one):

    <store>/v0002/corrections.parquet   id, task, label, grader, version (the version that recorded the row)
    <store>/v0002/version.json          lineage: the model (and registered version) whose scores were corrected,
                                        the data it learnt from (config and digest), the parent version, which
                                        responses this version corrected, the corrections file's sha256, the
                                        MLflow run that recorded it

No response text is stored: texts stay in the data folder. A corrections file is refused whole, naming the
first invalid row, if any row names an unknown response, another task than the response's, or a score outside
the task's range; nothing is recorded then.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from raykd.data.dataset import CONTINUOUS, MULTICLASS, MULTILABEL, ScoringDataset, TaskSpec, parse_label
from raykd.data.files import cell, read_table
from raykd.errors import DataError
from raykd.io import atomic_dir, file_digest

CORRECTIONS = "corrections.parquet"
VERSION = "version.json"
_VERSION_DIR = re.compile(r"^v(\d{4,})$")
LABEL_COLUMNS = ("score", "label")  # the human score's column, by either name


@dataclass(frozen=True)
class CorrectionsVersion:
    """What one `raykd feedback` recorded: the version folder and its lineage."""

    version: int
    folder: str
    parent: str | None
    model: str  # the model whose scores were corrected, as given (folder, runs:/ or models:/ URI)
    model_version: str  # its registered version ("" for a folder)
    data_digest: str  # the digest of the data the model learnt from
    data_path: str
    source: str  # the corrections file read
    source_sha256: str
    corrected: int  # responses this version corrected
    replaced: int  # of them, responses an earlier version had corrected
    total: int  # corrections in the version, earlier ones included
    per_task: dict[str, int] = field(default_factory=dict)
    recorded_at: str = ""
    mlflow_run_id: str = ""


def _label_text(spec: TaskSpec, y: int | float | tuple[int, ...]) -> str:
    """A parsed label as the corrections file stores it: the score's name (a continuous score as a number), or
    the 0/1 flags joined by `;`."""
    if spec.kind == CONTINUOUS:
        return f"{float(y):g}"  # type: ignore[arg-type]
    return spec.labels[int(y)] if spec.kind == MULTICLASS else ";".join(str(int(f)) for f in y)  # type: ignore[union-attr]


def _raw_label(spec: TaskSpec, value: str) -> str | list[str]:
    return re.split(r"[;,|]", value) if spec.kind == MULTILABEL else value


def read_corrections(path: str | Path, ds: ScoringDataset, tasks: dict[str, TaskSpec]) -> pd.DataFrame:
    """The valid corrections of `path` (id, task, label, grader), checked against the responses of `ds` and the
    tasks the model scores. Any invalid row refuses the whole file: a DataError names its row (the header is
    row 1) and how many rows are invalid."""
    path = Path(path)
    frame = read_table(path)
    label_col = next((c for c in LABEL_COLUMNS if c in frame.columns), None)
    missing = [c for c, ok in (("id", "id" in frame.columns), ("score", label_col)) if not ok]
    if missing:
        raise DataError(str(path), f"missing column(s) {missing}: a corrections file has id, task (optional for a "
                                   f"one-task model), score and optionally grader; found {list(frame.columns)}")
    if frame.empty:
        raise DataError(str(path), "no corrections in this file")
    task_of = dict(zip(ds.frame["id"].astype(str), ds.frame["task"], strict=True))
    rows: list[dict[str, str]] = []
    problems: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for i, rec in enumerate(frame.to_dict("records"), start=2):
        rid, given = cell(rec["id"]) or "", cell(rec.get("task")) or ""
        value, grader = cell(rec[label_col]) or "", cell(rec.get("grader")) or ""
        reason = None
        if not rid:
            reason = "empty id"
        elif rid in seen:
            reason = f"id {rid!r} corrected twice in this file (first in row {seen[rid]})"
        elif rid not in task_of:
            reason = f"unknown id {rid!r}: no such response in the data the model learnt from"
        elif task_of[rid] not in tasks:
            reason = f"response {rid!r} answers task {task_of[rid]!r}, which this model does not score"
        elif given and given != task_of[rid]:
            reason = f"response {rid!r} answers task {task_of[rid]!r}, not {given!r}"
        elif not value:
            reason = f"empty score for id {rid!r}"
        if reason is None:
            spec = tasks[task_of[rid]]
            try:
                label = _label_text(spec, parse_label(spec, _raw_label(spec, value)))
            except ValueError as e:
                reason = f"id {rid!r}: {e}"
        if reason is not None:
            problems.append((i, reason))
            continue
        seen[rid] = i
        rows.append({"id": rid, "task": task_of[rid], "label": label, "grader": grader})
    if problems:
        row, reason = problems[0]
        more = f" ({len(problems) - 1} more invalid row(s))" if len(problems) > 1 else ""
        raise DataError(str(path), f"{reason}{more}; nothing was recorded", row=row)
    return pd.DataFrame(rows, columns=["id", "task", "label", "grader"])


def versions(store: str | Path) -> list[Path]:
    """The version folders of a store, oldest first."""
    store = Path(store)
    if not store.is_dir():
        return []
    return sorted((p for p in store.iterdir() if p.is_dir() and _VERSION_DIR.match(p.name)),
                  key=lambda p: int(p.name[1:]))


def load_version(folder: str | Path) -> tuple[CorrectionsVersion, pd.DataFrame]:
    """A version's lineage and its corrections; a store folder means its latest version."""
    folder = Path(folder).expanduser()
    if not (folder / VERSION).is_file() and versions(folder):
        folder = versions(folder)[-1]
    if not (folder / VERSION).is_file() or not (folder / CORRECTIONS).is_file():
        raise DataError(str(folder), f"not a corrections version ({VERSION} and {CORRECTIONS} are written by "
                                     "`raykd feedback`)")
    raw = json.loads((folder / VERSION).read_text())
    return CorrectionsVersion(**raw), pd.read_parquet(folder / CORRECTIONS)


def apply_corrections(ds: ScoringDataset, version: str | Path) -> ScoringDataset:
    """`ds` with a corrections version applied: each corrected response takes the person's score, and a
    corrected unscored response becomes a training response. Every correction must find its response."""
    _, corrections = load_version(version)
    frame = ds.frame.copy()
    where = {rid: i for i, rid in enumerate(frame["id"].astype(str))}
    for rec in corrections.itertuples(index=False):
        i = where.get(rec.id)
        if i is None or frame.at[i, "task"] != rec.task:
            raise DataError(str(version), f"correction of {rec.id!r} ({rec.task}) finds no such response in this "
                                          "data: the version was recorded against other data")
        spec = ds.tasks[rec.task]
        frame.at[i, "y"] = parse_label(spec, _raw_label(spec, rec.label))
        if frame.at[i, "split"] == "unlabelled":
            frame.at[i, "split"] = "train"
    return ScoringDataset(ds.name, dict(ds.tasks), frame, list(ds.problems))


def record_version(store: str | Path, new: pd.DataFrame, lineage: dict[str, str]) -> CorrectionsVersion:
    """Write the next version of `store`: the parent's corrections with `new` ones added (a response corrected
    again takes the new score). `lineage`: model, model_version, data_digest, data_path, source, mlflow_run_id."""
    store = Path(store).expanduser().resolve()
    past = versions(store)
    number = int(past[-1].name[1:]) + 1 if past else 1
    parent = pd.read_parquet(past[-1] / CORRECTIONS) if past else pd.DataFrame(
        columns=["id", "task", "label", "grader", "version"])
    replaced = int(parent["id"].isin(new["id"]).sum())
    merged = pd.concat([parent[~parent["id"].isin(new["id"])], new.assign(version=number)], ignore_index=True)
    folder = store / f"v{number:04d}"
    version = CorrectionsVersion(
        version=number, folder=str(folder), parent=str(past[-1]) if past else None, corrected=len(new),
        replaced=replaced, total=len(merged), per_task={str(k): int(v) for k, v in new["task"].value_counts().items()},
        recorded_at=datetime.now(UTC).isoformat(timespec="seconds"), source_sha256=file_digest(lineage["source"]),
        **lineage)
    with atomic_dir(folder) as tmp:
        merged.astype({"version": "int64"}).to_parquet(tmp / CORRECTIONS, index=False)
        (tmp / VERSION).write_text(json.dumps(dataclasses.asdict(version), indent=2))
    return version


def default_store(ds_name: str) -> Path:
    """Where a dataset's corrections go unless told: `$RAYKD_HOME/corrections/<dataset>` (default ./runs)."""
    import os

    from raykd.tracking import DEFAULT_DIR_ENV

    return Path(os.environ.get(DEFAULT_DIR_ENV, "runs")).resolve() / "corrections" / re.sub(r"[^\w.-]", "_", ds_name)


def registered_version(model: str, tracking_uri: str) -> str:
    """The registered version a `models:/NAME@ALIAS` or `models:/NAME/N` reference points at ("" otherwise)."""
    if not model.startswith("models:/"):
        return ""
    from mlflow.tracking import MlflowClient

    from raykd.registry import parse_model_ref

    name, alias, version = parse_model_ref(model)
    client = MlflowClient(tracking_uri=tracking_uri)
    return str(client.get_model_version_by_alias(name, alias).version) if alias else str(version)


def run_feedback(model: str, corrections: str | Path, store: str | Path | None = None,
                 tracking_uri: str | None = None) -> CorrectionsVersion:
    """`raykd feedback`: check `corrections` against the data `model` learnt from and record them as the next
    version of the store (default: beside the corrections the model trained on, else `default_store`), with an
    MLflow run in the `raykd-feedback` experiment that carries the lineage and the corrections as a dataset."""
    import mlflow

    from raykd.data.preparation import load_unsplit, model_data
    from raykd.heads import TaskLayout
    from raykd.pipeline import say
    from raykd.scoring import MANIFEST, resolve_model
    from raykd.tracking import default_tracking_uri, log_dataset_input, setup_experiment

    tracking_uri = tracking_uri or default_tracking_uri()
    folder = resolve_model(model, tracking_uri)
    prepared = model_data(folder)
    layout = TaskLayout.from_list(json.loads((folder / MANIFEST).read_text())["tasks"])
    # every response of the data, scored or not, may be corrected: the unscored ones are what review is for
    ds = load_unsplit(dataclasses.replace(prepared.data, include_unlabelled=True), corrected=False)
    new = read_corrections(corrections, ds, {spec.name: spec for spec in layout.tasks})
    if store is None:
        store = Path(prepared.data.corrections).expanduser().parent if prepared.data.corrections \
            else default_store(ds.name)
    experiment = setup_experiment(tracking_uri, "raykd-feedback")
    with mlflow.start_run(experiment_id=experiment, run_name=f"corrections-{len(versions(store)) + 1:04d}") as run:
        version = record_version(store, new, {
            "model": model, "model_version": registered_version(model, tracking_uri),
            "data_digest": prepared.digest, "data_path": str(prepared.data.path), "source": str(corrections),
            "mlflow_run_id": run.info.run_id})
        mlflow.set_tags({"raykd.model": model, "raykd.model_version": version.model_version,
                         "raykd.data_digest": prepared.digest, "raykd.corrections_version": version.folder,
                         **({"raykd.corrections_parent": version.parent} if version.parent else {})})
        mlflow.log_params({"corrected": version.corrected, "replaced": version.replaced, "total": version.total,
                           "version": version.version})
        merged = pd.read_parquet(Path(version.folder) / CORRECTIONS)
        log_dataset_input(merged.assign(split="correction", y=merged["label"]), f"corrections-v{version.version:04d}",
                          file_digest(Path(version.folder) / CORRECTIONS), version.folder, context="corrections")
        mlflow.log_artifact(str(Path(version.folder) / VERSION))
    say("feedback", f"{version.corrected} correction(s) recorded as version {version.version} at {version.folder} "
                    f"({version.replaced} replace earlier ones; {version.total} in all). Train on them with "
                    f"--set data.corrections={version.folder}")
    return version
