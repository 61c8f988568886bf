"""A saved student simulator answering one learner at a time: what `/v1/simulate` and offline callers use.

`predict(history, next_skills)`: the probability of a correct answer on each of `next_skills` given the
history alone (what-if questions). With `sample=True` the learner answers them in order instead: each answer is
drawn (seeded) and joins the history before the next probability, as in `raykd.kt.cohort.play`. The model reads
the attempts since its last window boundary (every `max_length` attempts), exactly as it was trained and plays.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from raykd.errors import RaykdError
from raykd.kt.models import DKT


class UnknownSkill(ValueError):
    def __init__(self, where: str, skill: int):
        self.where, self.skill = where, skill
        super().__init__(f"{where}: unknown skill {skill}")


@dataclass
class Simulation:
    probabilities: list[float]
    answers: list[int] | None


class Simulator:
    def __init__(self, model: DKT, skill_ids: list[int], max_length: int, names: dict[int, str] | None = None):
        self.model, self.skill_ids, self.max_length = model.eval(), skill_ids, max_length
        self.index = {s: i + 1 for i, s in enumerate(skill_ids)}
        self.names = names or {}

    @classmethod
    def load(cls, uri: str | Path, tracking_uri: str | None = None, dst_path: Path | None = None) -> Simulator:
        """A champion folder, or an MLflow URI of one (`models:/NAME@champion`, `runs:/ID/champion`), downloaded
        into `dst_path` (default: a new temporary folder)."""
        from raykd.kt.student import MODEL_JSON, load_student

        folder = Path(uri)
        if not (folder / MODEL_JSON).is_file():
            if ":/" not in str(uri):
                raise RaykdError(f"{uri}: not a simulator folder ({MODEL_JSON} missing)")
            import mlflow

            if tracking_uri:
                mlflow.set_tracking_uri(tracking_uri)
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=str(uri),
                                                             dst_path=None if dst_path is None else str(dst_path)))
            found = [p.parent for p in local.rglob(MODEL_JSON)]
            if not found:
                raise RaykdError(f"{uri}: the MLflow artifact holds no simulator")
            folder = found[0]
        model, meta = load_student(folder)
        if meta.get("family") != "kt-dkt":
            raise RaykdError(f"{uri}: not a knowledge-tracing simulator (family {meta.get('family')!r})")
        names = {int(k): v for k, v in meta.get("skill_names", {}).items()}
        return cls(model, [int(s) for s in meta["skill_ids"]], int(meta["max_length"]), names)

    def _indices(self, skills: list[int], where: str) -> list[int]:
        for i, s in enumerate(skills):
            if s not in self.index:
                raise UnknownSkill(f"{where}[{i}]", s)
        return [self.index[s] for s in skills]

    def _logits(self, skills: list[int], correct: list[int]) -> torch.Tensor:
        """Logits for every skill after these attempts (the model's prior when there are none)."""
        if not skills:
            return self.model.out(torch.zeros(1, self.model.lstm.hidden_size))[0]
        k = torch.as_tensor([skills])
        logits, _ = self.model.step(k, torch.as_tensor([correct], dtype=torch.float32), k > 0)
        return logits[0, -1]

    def predict(self, history: list[tuple[int, int]], next_skills: list[int], sample: bool = False,
                seed: int | None = None) -> Simulation:
        skills = self._indices([s for s, _ in history], "history")
        correct = [int(c) for _, c in history]
        targets = self._indices(next_skills, "next_skills")
        start = len(skills) - len(skills) % self.max_length
        skills, correct = skills[start:], correct[start:]
        with torch.no_grad():
            if not sample:
                p = torch.sigmoid(self._logits(skills, correct))
                return Simulation([float(p[k - 1]) for k in targets], None)
            rng = np.random.default_rng(seed)
            probs, answers = [], []
            for k in targets:
                if len(skills) == self.max_length:
                    skills, correct = [], []
                p = float(torch.sigmoid(self._logits(skills, correct)[k - 1]))
                a = int(rng.random() < p)
                probs.append(p)
                answers.append(a)
                skills, correct = [*skills, k], [*correct, a]
        return Simulation(probs, answers)
