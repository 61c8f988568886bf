"""MLflow helpers: the default local store, experiments, flattened params, code version."""

from __future__ import annotations

import os
import subprocess
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DEFAULT_DIR_ENV = "RAYKD_HOME"


def default_tracking_uri() -> str:
    """`$MLFLOW_TRACKING_URI`, else a SQLite file under `$RAYKD_HOME` (default ./runs)."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    home = Path(os.environ.get(DEFAULT_DIR_ENV, "runs")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'mlflow.db'}"


def setup_experiment(tracking_uri: str, experiment: str) -> str:
    """Point MLflow at `tracking_uri` and return the experiment id, creating it if needed. With a local
    SQLite store, artifacts go to `mlartifacts/` beside the database."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        return found.experiment_id
    artifact_location = None
    if tracking_uri.startswith("sqlite:///"):
        artifact_location = (Path(tracking_uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()
    return mlflow.create_experiment(experiment, artifact_location=artifact_location)


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, f"{key}."))
        else:
            out[key] = v if isinstance(v, int | float | str | bool) or v is None else str(v)
    return out


def git_commit() -> str:
    """The code version: the checkout's commit (with `-dirty` if it has changes), or `unknown`."""
    root = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return f"{sha}-dirty" if dirty else sha
    except (OSError, subprocess.SubprocessError):
        return os.environ.get("RAYKD_GIT_COMMIT", "unknown")


def log_dataset_input(ds_frame: Any, name: str, digest: str, source: str, context: str = "training") -> None:
    """Record the dataset as an MLflow dataset input; ids and labels only, never response text."""
    import mlflow
    import pandas as pd

    frame = pd.DataFrame({"id": ds_frame["id"], "task": ds_frame["task"], "split": ds_frame["split"],
                          "y": ds_frame["y"].map(lambda y: None if y is None else str(y))})
    with warnings.catch_warnings():
        # MLflow 3.17 registers its local-file source class twice and warns that a path is ambiguous.
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
        dataset = mlflow.data.from_pandas(frame, source=source, name=name, digest=digest[:36])
    mlflow.log_input(dataset, context=context)
