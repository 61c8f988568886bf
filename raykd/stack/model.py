"""A stacked teacher's model folder, and the scorer that reads it like any raykd model (raykd.scoring).

    raykd_model.json     type `stack`, tasks, thresholds (ordinal cut-points, multi-label thresholds), the
                         representations (backbone, layer, token limit, precision, cache key and the backbone's
                         checksum), the learners kept, parameter counts, and `prompts`: per task whose training
                         responses all answered one question (an ASAP-SAS set), that question and reference,
                         which the scorer reads for a response given without them
    tasks/<task>.joblib  the task's fitted stack (raykd.stack.fit.TaskStack: scikit-learn models and the
                         neighbour banks), saved with joblib as scikit-learn recommends: like any pickled model,
                         a model folder is trusted as code is (SECURITY.md)
    calibration.json     written by the stage (raykd.confidence), data.json (the data it learnt from)

The scorer loads each backbone once, refuses one whose files no longer match the recorded checksum (its states
would not be the ones the learners were fitted on), encodes the responses, questions and reference answers it
is given, and scores each task with its stack.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from raykd.config import from_dict
from raykd.errors import RaykdError
from raykd.heads import TaskLayout
from raykd.io import atomic_dir
from raykd.stack.config import RepresentationConfig
from raykd.stack.fit import TaskStack
from raykd.stack.learners import build_rows

MANIFEST = "raykd_model.json"


def save_stack(out_dir: str | Path, layout: TaskLayout, stacks: dict[str, TaskStack],
               representations: list[RepresentationConfig], thresholds: dict[str, list[float]],
               parameters: dict[str, int], prompts: dict[str, dict[str, str | None]],
               extra: dict[str, Any] | None = None) -> Path:
    """Write the folder into a temporary one beside `out_dir`, then move it into place."""
    import joblib

    from raykd.stack.representations import backbone_checksum, cache_key

    with atomic_dir(out_dir) as tmp:
        (tmp / "tasks").mkdir()
        for name, stack in stacks.items():
            joblib.dump(stack, tmp / "tasks" / f"{name}.joblib", compress=3)
        manifest = {
            "type": "stack",
            "tasks": layout.to_list(),
            "thresholds": thresholds,
            "representations": [{**dataclasses.asdict(r), "key": cache_key(r),
                                 "checksum": backbone_checksum(r.backbone)} for r in representations],
            "learners": {name: [learner.name for learner in stack.learners] for name, stack in stacks.items()},
            "parameters": parameters,
            "prompts": prompts,
            **(extra or {}),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return Path(out_dir)


class StackScorer:
    """Loads a saved stack and returns per-task probabilities for batches of responses."""

    kind = "stack"

    def __init__(self, path: str | Path):
        import joblib

        from raykd.stack.representations import Encoder, backbone_checksum

        self.path = Path(path)
        self.manifest = json.loads((self.path / MANIFEST).read_text())
        self.layout = TaskLayout.from_list(self.manifest["tasks"])
        self.thresholds: dict[str, list[float]] = self.manifest.get("thresholds", {})
        self.prompts: dict[str, dict[str, str | None]] = self.manifest.get("prompts", {})
        self.encoders: dict[str, Encoder] = {}
        for raw in self.manifest["representations"]:
            cfg = from_dict(RepresentationConfig, {k: v for k, v in raw.items() if k not in ("key", "checksum")},
                            f"{self.path / MANIFEST}: representations")
            if backbone_checksum(cfg.backbone) != raw["checksum"]:
                raise RaykdError(f"{self.path}: backbone {cfg.backbone!r} is not the one this stack was fitted on "
                                 f"(checksum {backbone_checksum(cfg.backbone)[:16]}, recorded {raw['checksum'][:16]})")
            self.encoders[raw["key"]] = Encoder(cfg)
        self.stacks: dict[str, TaskStack] = {}
        for spec in self.layout.tasks:
            file = self.path / "tasks" / f"{spec.name}.joblib"
            if not file.is_file():
                raise RaykdError(f"{self.path}: the stack of task {spec.name!r} is missing ({file.name})")
            self.stacks[spec.name] = joblib.load(file)

    @property
    def num_parameters(self) -> int:
        return int(self.manifest["parameters"]["total"])

    def predict_proba(self, texts: list[str], tasks: list[str], questions: list[str | None] | None = None,
                      references: list[str | None] | None = None, batch_size: int = 32) -> list[np.ndarray]:
        """One probability vector per response, over its task's classes/labels."""
        n = len(texts)
        for encoder in self.encoders.values():
            encoder.cfg = dataclasses.replace(encoder.cfg, batch_size=batch_size)
        questions = [q or self.prompts.get(t, {}).get("question") for q, t in zip(questions or [None] * n, tasks,
                                                                                   strict=True)]
        references = [r or self.prompts.get(t, {}).get("reference") for r, t in zip(references or [None] * n, tasks,
                                                                                      strict=True)]
        rows = build_rows(list(texts), questions, references, list(self.encoders),
                          lambda key, strings: self.encoders[key].encode(strings))
        out: list[np.ndarray] = [None] * n  # type: ignore[list-item]
        names = np.asarray(tasks)
        for task in dict.fromkeys(tasks):
            idx = np.flatnonzero(names == task)
            for i, p in zip(idx, self.stacks[task].predict_proba(rows.take(idx)), strict=True):
                out[i] = p.astype(np.float32)
        return out
