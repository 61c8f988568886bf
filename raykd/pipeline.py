"""The stage skeleton: every pipeline stage is a config in, a typed result out, and one MLflow run with lineage
(ARCHITECTURE.md draws the pipeline and the artifacts between its stages).

A stage opens its run with `StageRun.open(...)`: the MLflow store (the call's, the config's, the teacher's, or
the default), the experiment, the run with the stage's lineage tags (`Lineage`), its params and its dataset
input. `run.say(...)` prints progress; `run.save(result, name)` writes the typed result atomically as JSON
and logs it. `load_result(cls, path)` reads a result back, typed. A new stage or model family follows the
same pattern: see ARCHITECTURE.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from raykd.config import TrackingConfig
from raykd.io import write_text_atomic

T = TypeVar("T")


@dataclass
class Lineage:
    """The tags that point a run back along the chain: data -> teacher run -> soft labels -> this run."""

    data_digest: str
    git_commit: str
    teacher_run_id: str = ""
    soft_labels_digest: str = ""
    soft_labels_artifact: str = ""

    def tags(self) -> dict[str, str]:
        return {f"raykd.{k}": v for k, v in dataclasses.asdict(self).items() if v}


def say(stage: str, message: str) -> None:
    """A progress line for a person to follow, prefixed with the stage. Written to stdout directly: Ray Train
    V2 patches `print` in its workers into a logger that the driver then shows twice."""
    sys.stdout.write(f"[{stage}] {message}\n")
    sys.stdout.flush()


def resolve_tracking_uri(explicit: str | None, tracking: TrackingConfig, upstream: str | None = None) -> str:
    """The MLflow store of a stage: the caller's, the config's, the stage before it's, or the default."""
    from raykd.tracking import default_tracking_uri

    return explicit or tracking.tracking_uri or upstream or default_tracking_uri()


class StageRun:
    """One stage's MLflow run and output folder (see the module docstring)."""

    def __init__(self, stage: str, out: Path, tracking_uri: str, experiment_id: str, run: Any, location: str):
        self.stage, self.out, self.tracking_uri, self.experiment_id, self.run = (stage, out, tracking_uri,
                                                                                experiment_id, run)
        self.location = location  # where `out` is kept: its own path, or an object store (raykd.storage)

    def locate(self, path: str | Path) -> str:
        """Where a file or folder under `out` is kept once the stage has finished (its path, or its URI)."""
        from raykd import storage

        return storage.join(self.location, *Path(path).relative_to(self.out).parts)

    @property
    def run_id(self) -> str:
        return self.run.info.run_id

    @classmethod
    @contextlib.contextmanager
    def open(cls, stage: str, name: str, out: str | Path, tracking: TrackingConfig, tracking_uri: str,
             lineage: Lineage, params: dict[str, Any], dataset: Any = None, data_source: str = "",
             parent_run_id: str | None = None, tags: dict[str, str] | None = None,
             resume_run_id: str | None = None) -> Iterator[StageRun]:
        """`out`: a folder or an object-store location (raykd.storage; the stage writes into a local folder
        published there when it succeeds). `resume_run_id`: carry on an interrupted stage's run (its params and
        inputs are already logged)."""
        import mlflow

        from raykd import storage
        from raykd.tracking import flatten, log_dataset_input, setup_experiment

        location = storage.normalise(out)
        folder = storage.stage_folder(location)
        try:
            experiment_id = setup_experiment(tracking_uri, tracking.experiment)
            if resume_run_id:
                started = mlflow.start_run(run_id=resume_run_id)
            else:
                run_name = tracking.run_name or f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
                started = mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags={
                    **lineage.tags(), "raykd.stage": stage, **(tags or {}),
                    **({"mlflow.parentRunId": parent_run_id} if parent_run_id else {})})
            with started as run:
                if not resume_run_id:
                    mlflow.log_params(flatten(params))
                    if dataset is not None:
                        log_dataset_input(dataset.frame, name=Path(data_source).name or dataset.name,
                                          digest=lineage.data_digest, source=data_source)
                yield cls(stage, folder, tracking_uri, experiment_id, run, location)
                storage.publish(folder, location)  # inside the MLflow run: a failed upload fails the run
        finally:
            storage.discard(folder, location)

    @contextlib.contextmanager
    def child(self, name: str, lineage: Lineage, params: dict[str, Any], tags: dict[str, str] | None = None,
              stage: str = "student") -> Iterator[Any]:
        """A run nested under this stage's (one student, one trial, one teacher member), with the lineage tags
        and its params; yields MLflow's active run."""
        import mlflow

        from raykd.tracking import flatten

        with mlflow.start_run(experiment_id=self.experiment_id, run_name=name, nested=True,
                              tags={**lineage.tags(), "raykd.stage": stage, "mlflow.parentRunId": self.run_id,
                                    **(tags or {})}) as child:
            mlflow.log_params(flatten(params))
            yield child

    def say(self, message: str) -> None:
        say(self.stage, message)

    def log_metrics(self, metrics: dict[str, float]) -> None:
        """Finite metrics on this stage's run (MLflow rejects NaN); `/` in names becomes `.`."""
        import math

        import mlflow

        mlflow.log_metrics({k.replace("/", "."): float(v) for k, v in metrics.items() if math.isfinite(float(v))})

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        import mlflow

        mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def save(self, result: Any, filename: str) -> Path:
        """Write a typed result (a dataclass) atomically into the output folder and log it to the run."""
        import mlflow

        path = self.out / filename
        write_text_atomic(path, json.dumps(dataclasses.asdict(result), indent=2, default=_plain))
        mlflow.log_artifact(str(path))
        return path


def load_result(cls: type[T], path: str | Path) -> T:
    """A stage's saved result, read back into its dataclass (validated)."""
    from pydantic import TypeAdapter

    return TypeAdapter(cls).validate_python(json.loads(Path(path).read_text()))


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
