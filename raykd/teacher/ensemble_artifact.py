"""An ensemble of teachers as a model: a folder that scores new responses with the weighted mean of its members,
so the teacher the students learnt from can be measured, served and compared with as a whole.

    raykd_model.json   type `ensemble`, tasks, thresholds (fitted on the combined validation probabilities),
                       members (folder, run id, backbone), weights per task (one per member, summing to 1),
                       token_source (the member whose sub-words and embeddings students start from),
                       parameters (the members' together)
    members/<i>-<name>/  each member's own model folder (any raykd teacher kind, an ensemble included)
    calibration.json   fitted on the combined validation probabilities (raykd.confidence)

    p_ensemble(task, response) = sum_m w[task][m] * p_m(task, response)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from raykd.heads import TaskLayout
from raykd.io import atomic_dir

MANIFEST = "raykd_model.json"


def member_folder_name(i: int, backbone: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in backbone) or "member"
    return f"members/{i}-{safe}"


def save_ensemble(out_dir: str | Path, layout: TaskLayout, members: list[tuple[Path, str, str]],
                  weights: dict[str, list[float]], thresholds: dict[str, list[float]], token_source: int,
                  parameters: dict[str, Any]) -> Path:
    """`members`: (model folder, run id, backbone) of each member, in weight order."""
    import shutil

    with atomic_dir(out_dir) as tmp:
        listed = []
        for i, (folder, run_id, backbone) in enumerate(members):
            name = member_folder_name(i, backbone)
            shutil.copytree(folder, tmp / name)
            listed.append({"path": name, "run_id": run_id, "backbone": backbone})
        manifest = {"type": "ensemble", "tasks": layout.to_list(), "thresholds": thresholds, "members": listed,
                    "weights": weights, "token_source": listed[token_source]["path"], "parameters": parameters}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return Path(out_dir)


class EnsembleScorer:
    """Loads every member (uncalibrated: the ensemble mixes raw probabilities) and mixes their probabilities."""

    kind = "ensemble"

    def __init__(self, path: str | Path, device: str | None = None):
        from raykd.scoring import load_model

        self.path = Path(path)
        self.manifest = json.loads((self.path / MANIFEST).read_text())
        self.layout = TaskLayout.from_list(self.manifest["tasks"])
        self.thresholds: dict[str, list[float]] = self.manifest.get("thresholds", {})
        self.weights: dict[str, list[float]] = self.manifest["weights"]
        self.members = [load_model(self.path / m["path"], device) for m in self.manifest["members"]]

    @property
    def num_parameters(self) -> int:
        return sum(m.num_parameters for m in self.members)

    def predict_proba(self, texts: list[str], tasks: list[str], questions: list[str | None] | None = None,
                      references: list[str | None] | None = None, batch_size: int = 32) -> list[np.ndarray]:
        """One probability vector per response, over its task's classes/labels: the members' weighted mean."""
        outputs = [m.predict_proba(texts, tasks, questions, references, batch_size=batch_size) for m in self.members]
        return [sum(self.weights[t][k] * np.asarray(out[i], dtype=np.float64) for k, out in enumerate(outputs))
                .astype(np.float32) for i, t in enumerate(tasks)]
