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
from raykd.kt.models import DKT, KTIndex


class UnknownSkill(ValueError):
    def __init__(self, where: str, skill: int):
        self.where, self.skill = where, skill
        super().__init__(f"{where}: unknown skill {skill}")


@dataclass
class Simulation:
    probabilities: list[float]
    answers: list[int] | None


class Simulator:
    """`ids` are what a history names: skills, or items on item-level data (each answered through its skill and
    its difficulty)."""

    def __init__(self, model: DKT, skill_ids: list[int], max_length: int, names: dict[int, str] | None = None,
                 item_skill: dict[int, int] | None = None):
        self.model, self.skill_ids, self.max_length = model.eval(), skill_ids, max_length
        self.index = KTIndex.of(skill_ids, item_skill)
        self.ids = sorted(self.index.skill)
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
        skill_names = {int(k): v for k, v in meta.get("skill_names", {}).items()}
        item_skill = {int(q): int(s) for q, s in meta.get("item_skill", [])}
        names = skill_names
        if item_skill:  # the ids are items: each named by its own name, else by its skill's
            item_names = {int(k): v for k, v in meta.get("item_names", {}).items()}
            names = {q: n for q, s in item_skill.items() if (n := item_names.get(q) or skill_names.get(s))}
        return cls(model, [int(s) for s in meta["skill_ids"]], int(meta["max_length"]), names, item_skill)

    def _indices(self, ids: list[int], where: str) -> list[tuple[int, int]]:
        """(skill index, item index or 0) of each id."""
        for i, s in enumerate(ids):
            if s not in self.index:
                raise UnknownSkill(f"{where}[{i}]", s)
        return [(self.index.skill[s], self.index.item.get(s, 0)) for s in ids]

    def _logits(self, attempts: list[tuple[int, int]], correct: list[int]) -> torch.Tensor:
        """Logits for every skill after these attempts (the model's prior when there are none)."""
        if not attempts:
            return self.model.out(torch.zeros(1, self.model.lstm.hidden_size))[0]
        k = torch.as_tensor([[a for a, _ in attempts]])
        item = torch.as_tensor([[q for _, q in attempts]]) if self.index.item else None
        logits, _ = self.model.step(k, torch.as_tensor([correct], dtype=torch.float32), k > 0, None, item)
        return logits[0, -1]

    def _probability(self, logits: torch.Tensor, target: tuple[int, int]) -> float:
        skill, item = target
        z = logits[skill - 1]
        if self.model.difficulty is not None and item:
            z = z - self.model.difficulty.weight[item, 0]
        return float(torch.sigmoid(z))

    def predict(self, history: list[tuple[int, int]], next_skills: list[int], sample: bool = False,
                seed: int | None = None) -> Simulation:
        attempts = self._indices([s for s, _ in history], "history")
        correct = [int(c) for _, c in history]
        targets = self._indices(next_skills, "next_skills")
        start = len(attempts) - len(attempts) % self.max_length
        attempts, correct = attempts[start:], correct[start:]
        with torch.no_grad():
            if not sample:
                logits = self._logits(attempts, correct)
                return Simulation([self._probability(logits, t) for t in targets], None)
            rng = np.random.default_rng(seed)
            probs, answers = [], []
            for t in targets:
                if len(attempts) == self.max_length:
                    attempts, correct = [], []
                p = self._probability(self._logits(attempts, correct), t)
                a = int(rng.random() < p)
                probs.append(p)
                answers.append(a)
                attempts, correct = [*attempts, t], [*correct, a]
        return Simulation(probs, answers)
