"""Load any saved raykd model (teacher or student, local folder or MLflow URI) behind one interface:
`scorer.layout`, `scorer.thresholds`, `scorer.predict_proba(texts, tasks, ...)`; and turn probabilities
into predictions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from raykd.errors import RaykdError
from raykd.heads import TaskLayout, decide

MANIFEST = "raykd_model.json"


class Scorer(Protocol):
    kind: str
    layout: TaskLayout
    thresholds: dict[str, list[float]]

    @property
    def num_parameters(self) -> int: ...

    def predict_proba(self, texts: list[str], tasks: list[str], questions: list[str | None] | None = None,
                      references: list[str | None] | None = None, batch_size: int = ...) -> list[np.ndarray]: ...


def resolve_model(uri: str, tracking_uri: str | None = None) -> Path:
    """A local model folder for a path, `runs:/ID/model`, or `models:/NAME@ALIAS` (downloaded once)."""
    if "://" not in uri and ":/" not in uri:
        path = Path(uri)
        if not (path / MANIFEST).is_file():
            raise RaykdError(f"{uri}: not a raykd model folder ({MANIFEST} missing)")
        return path
    import mlflow

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    except Exception as e:  # MLflow raises several types for a missing model or run
        raise RaykdError(f"{uri}: cannot fetch the model from MLflow ({e.__class__.__name__}: {e})") from None
    if not (local / MANIFEST).is_file():
        candidates = list(local.rglob(MANIFEST))
        if not candidates:
            raise RaykdError(f"{uri}: the MLflow artifact holds no raykd model")
        local = candidates[0].parent
    return local


def load_scorer(uri: str, tracking_uri: str | None = None, device: str | None = None) -> Any:
    """A student or teacher scorer; `device` places a teacher (default: the GPU when there is one)."""
    path = resolve_model(uri, tracking_uri)
    kind = json.loads((path / MANIFEST).read_text()).get("type")
    if kind == "student":
        from raykd.students.artifact import StudentScorer

        return StudentScorer(path)
    if kind == "teacher":
        from raykd.teacher.artifact import TeacherScorer

        return TeacherScorer(path, device=device)
    raise RaykdError(f"{path}: unknown model type {kind!r}")


def predictions(scorer: Any, tasks: list[str], probs: list[np.ndarray]) -> list[Any]:
    """Per response: the class label (multi-class) or the list of labels that apply (multi-label)."""
    out: list[Any] = []
    for task, p in zip(tasks, probs, strict=True):
        spec = scorer.layout.spec(task)
        decision = decide(p[None, :], spec, scorer.thresholds.get(task))[0]
        if spec.kind == "multiclass":
            out.append(spec.labels[int(decision)])
        else:
            out.append([lab for lab, d in zip(spec.labels, decision, strict=True) if d])
    return out
