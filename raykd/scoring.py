"""Load any saved raykd model (teacher or student, local folder or MLflow URI) behind one interface:
`scorer.layout`, `scorer.thresholds`, `scorer.predict_proba(texts, tasks, ...)`; and turn probabilities
into predictions, calibrated probabilities with a confidence, a conformal score set and a review flag
(raykd.confidence), and the one table every scoring path writes
(`id, task, prediction, confidence, score_set, needs_review, p_<label>`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from raykd.confidence import Calibration, Judgement, ReviewPolicy, judge
from raykd.data.dataset import CONTINUOUS, MULTICLASS
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


def resolve_model(uri: str, tracking_uri: str | None = None, dst_path: Path | None = None) -> Path:
    """A local model folder for a path, a folder in an object store (`s3://bucket/runs/tune/champion`, fetched into
    this node's cache, raykd.storage), `runs:/ID/model`, or `models:/NAME@ALIAS` (downloaded into `dst_path`,
    default a new temporary folder)."""
    from raykd import storage

    if storage.is_remote(uri):
        try:
            path = storage.localize(uri)
        except OSError as e:  # pyarrow: missing, unreachable or refused
            raise RaykdError(f"{uri}: cannot fetch the model folder ({e})") from None
        if not (path / MANIFEST).is_file():
            raise RaykdError(f"{uri}: not a raykd model folder ({MANIFEST} missing)")
        return path
    if "://" not in uri and ":/" not in uri:
        path = Path(uri)
        if not (path / MANIFEST).is_file():
            raise RaykdError(f"{uri}: not a raykd model folder ({MANIFEST} missing)")
        return path
    import mlflow

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=None if dst_path is None
                                                         else str(dst_path)))
    except Exception as e:  # MLflow raises several types for a missing model or run
        raise RaykdError(f"{uri}: cannot fetch the model from MLflow ({e.__class__.__name__}: {e})") from None
    return find_model_folder(local, uri)


def find_model_folder(local: Path, uri: str) -> Path:
    """The raykd model folder inside a downloaded artifact (a pyfunc model keeps it under artifacts/)."""
    if (local / MANIFEST).is_file():
        return local
    candidates = sorted(local.rglob(MANIFEST))
    if not candidates:
        raise RaykdError(f"{uri}: the MLflow artifact holds no raykd model")
    return candidates[0].parent


def load_scorer(uri: str, tracking_uri: str | None = None, device: str | None = None,
                review: ReviewPolicy | None = None) -> Any:
    """A student or teacher scorer with its calibration (`scorer.calibration`, None for a model saved without
    one); `review` replaces the review policy it was saved with; `device` places a teacher (default: the GPU
    when there is one)."""
    path = resolve_model(uri, tracking_uri)
    scorer = load_model(path, device)
    calibration = Calibration.load(path)
    scorer.calibration = calibration.with_policy(review) if calibration is not None and review else calibration
    return scorer


def load_model(path: str | Path, device: str | None = None) -> Any:
    """The scorer of a local model folder by its type (student, teacher, stack, ensemble), without calibration."""
    path = Path(path)
    kind = json.loads((path / MANIFEST).read_text()).get("type")
    if kind == "student":
        from raykd.students.artifact import StudentScorer

        return StudentScorer(path)
    if kind == "teacher":
        from raykd.teacher.artifact import TeacherScorer

        return TeacherScorer(path, device=device)
    if kind == "stack":
        from raykd.stack.model import StackScorer

        return StackScorer(path)
    if kind == "ensemble":
        from raykd.teacher.ensemble_artifact import EnsembleScorer

        return EnsembleScorer(path, device=device)
    raise RaykdError(f"{path}: unknown model type {kind!r}")


def predictions(scorer: Any, tasks: list[str], probs: list[np.ndarray]) -> list[Any]:
    """Per response: the class label (multi-class), the list of labels that apply (multi-label) or the score as
    text (continuous: "3.5")."""
    out: list[Any] = [None] * len(tasks)
    for task, rows in _rows_by_task(tasks).items():
        spec = scorer.layout.spec(task)
        decision = decide(np.stack([probs[i] for i in rows]), spec, scorer.thresholds.get(task))
        for i, d in zip(rows, decision, strict=True):
            if spec.kind == CONTINUOUS:
                out[i] = f"{float(d):g}"
            else:
                out[i] = spec.labels[int(d)] if spec.kind == MULTICLASS else [
                    lab for lab, flag in zip(spec.labels, d, strict=True) if flag]
    return out


def judged(scorer: Any, tasks: list[str], probs: list[np.ndarray]) -> tuple[list[np.ndarray], list[Judgement]]:
    """Per response: its calibrated probabilities (the raw ones for a model saved without a calibration) and
    what a school sees beside the score (confidence, score set, needs_review)."""
    calibration = getattr(scorer, "calibration", None)
    out: list[np.ndarray] = [None] * len(tasks)  # type: ignore[list-item]
    verdicts: list[Judgement] = [None] * len(tasks)  # type: ignore[list-item]
    for task, rows in _rows_by_task(tasks).items():
        spec = scorer.layout.spec(task)
        raw = np.stack([probs[i] for i in rows])
        calibrated = raw.astype(np.float64) if calibration is None else calibration.probabilities(task, raw)
        decided = decide(raw, spec, scorer.thresholds.get(task))  # raw: thresholds were fitted on raw scores
        for i, p, v in zip(rows, calibrated, judge(calibration, spec, calibrated, decided), strict=True):
            out[i], verdicts[i] = p, v
    return out, verdicts


def set_text(labels: tuple[str, ...], ordinal: bool) -> str:
    """A score set as a teacher reads it: `1-3` for a range of scores (a continuous task's interval: its two
    ends), `a;b` for categories, "" for none."""
    if ordinal and len(labels) > 1:
        return f"{labels[0]}-{labels[-1]}"
    return ";".join(labels)


def prob_columns(layout: TaskLayout) -> list[str]:
    """`p_<label>` for every label of every task, each once (tasks may share label names, e.g. scores)."""
    return list(dict.fromkeys(f"p_{label}" for spec in layout.tasks for label in spec.labels))


def prob_matrix(layout: TaskLayout, tasks: list[str], probs: list[np.ndarray]) -> np.ndarray:
    """The wide probability table: one row per response, one column per `prob_columns`, NaN where the
    response's task has no such label."""
    columns = {c: j for j, c in enumerate(prob_columns(layout))}
    out = np.full((len(tasks), len(columns)), np.nan, dtype=np.float64)
    for task, rows in _rows_by_task(tasks).items():
        cols = [columns[f"p_{label}"] for label in layout.spec(task).labels]
        out[np.ix_(rows, cols)] = np.stack([probs[i] for i in rows])
    return out


def scores_frame(scorer: Any, ids: list[str], tasks: list[str], probs: list[np.ndarray]) -> pd.DataFrame:
    """`id, task, prediction, confidence, score_set, needs_review, p_<label>...` (probabilities calibrated):
    what `raykd predict`, `raykd score` and the scoring page write."""
    preds = predictions(scorer, tasks, probs)
    calibrated, verdicts = judged(scorer, tasks, probs)
    layout = scorer.layout
    out = pd.DataFrame({"id": ids, "task": tasks,
                        "prediction": [p if isinstance(p, str) else ";".join(p) for p in preds],
                        "confidence": np.array([v.confidence for v in verdicts], dtype=np.float64),
                        "score_set": [set_text(v.score_set, layout.spec(t).ranged)
                                      for v, t in zip(verdicts, tasks, strict=True)],
                        "needs_review": np.array([v.needs_review for v in verdicts], dtype=bool)})
    matrix = prob_matrix(layout, tasks, calibrated)
    for j, c in enumerate(prob_columns(layout)):
        out[c] = matrix[:, j]
    return out


def plain_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """`p_*` and `confidence` columns as float64 and the rest as Python objects: Ray Data hands back
    Arrow-backed dtypes, and every reader of a scores or soft-label file should get plain numpy columns."""
    return pd.DataFrame({c: frame[c].to_numpy(dtype=np.float64, na_value=np.nan)
                         if c.startswith("p_") or c == "confidence" else frame[c].to_numpy(dtype=object)
                         for c in frame.columns})


def _rows_by_task(tasks: list[str]) -> dict[str, list[int]]:
    rows: dict[str, list[int]] = {}
    for i, t in enumerate(tasks):
        rows.setdefault(t, []).append(i)
    return rows
