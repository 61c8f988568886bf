"""The DKT student: one fit (gold BCE plus lambda times Bernoulli KD on the teacher's next-step and mastery
probabilities, raykd.distill.losses.sequence_kd), its saved form, and the Ray Tune search over lambda,
temperature and hidden size with a no-KD twin per size."""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from raykd.distill.losses import sequence_kd
from raykd.kt.config import KTSearchConfig, KTStudentConfig
from raykd.kt.data import Sequence
from raykd.kt.metrics import auc
from raykd.kt.models import DKT, KTIndex, batches, make_batch, next_step_logits, predict
from raykd.kt.results import KTSetting, KTStudentResult
from raykd.pipeline import say
from raykd.students.architectures import build_student
from raykd.training import TrainState

WEIGHTS, MODEL_JSON = "weights.pt", "model.json"


@dataclass
class SoftLabels:
    """The teacher's probabilities per training sequence: next step [n-1] and every skill [n-1, S]."""

    next: list[np.ndarray]
    mastery: list[np.ndarray]

    def padded(self, rows: list[int], length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, length] and [B, length, S], zero past each sequence's end (masked out by the loss)."""
        s = self.mastery[rows[0]].shape[1]
        nxt = np.zeros((len(rows), length), dtype=np.float32)
        mas = np.zeros((len(rows), length, s), dtype=np.float32)
        for r, i in enumerate(rows):
            n = len(self.next[i])
            nxt[r, :n] = self.next[i]
            mas[r, :n] = self.mastery[i]
        return torch.from_numpy(nxt), torch.from_numpy(mas)


def fit_student(train: list[Sequence], validation: list[Sequence], index: KTIndex, soft: SoftLabels | None,
                hp: KTStudentConfig, report: Any = None) -> tuple[DKT, float, int]:
    """Train with early stopping on validation AUC; returns the best model, its AUC and its epoch (1-based).
    `report(epoch, metrics)` is called after every epoch (Ray Tune)."""
    torch.manual_seed(hp.seed)
    model = build_student("dkt", {**asdict(hp), "num_skills": index.num_skills, "num_items": index.num_items})
    opt = torch.optim.Adam(model.parameters(), lr=hp.lr)
    state, best = TrainState(), None
    lam = hp.kd_weight if soft is not None else 0.0
    for epoch in range(hp.epochs):
        model.train()
        for group in batches(train, hp.batch_size, seed=hp.seed + epoch):
            b = make_batch([train[i] for i in group], index)
            logits = model(b)
            _, gold, valid = b.targets
            t_next, t_mastery = soft.padded(group, valid.shape[1]) if lam else (None, None)
            loss = sequence_kd(next_step_logits(logits, b, model.difficulty), gold, valid, lam, t_next, logits[:, :-1],
                               t_mastery,
                               hp.temperature, hp.mastery_weight)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        val_auc = auc(validation, predict(model, validation, index)[0])
        if state.record(epoch, val_auc):
            best = {k: v.clone() for k, v in model.state_dict().items()}
        if report is not None:
            report(epoch + 1, {"val_auc": val_auc, "best_val_auc": state.best_score})
        if state.should_stop(hp.patience):
            break
    model.load_state_dict(best)
    return model.eval(), state.best_score, state.best_epoch + 1


def save_student(folder: str | Path, model: DKT, hp: KTStudentConfig, skill_ids: list[int],
                 extra: dict[str, Any], item_skill: list[tuple[int, int]] | None = None) -> Path:
    from raykd.io import atomic_dir

    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        torch.save(model.state_dict(), tmp / WEIGHTS)
        (tmp / MODEL_JSON).write_text(json.dumps({"family": "kt-dkt", "student": asdict(hp),
                                                  "skill_ids": skill_ids, "item_skill": item_skill or [], **extra},
                                                 indent=2))
    return folder


def load_student(folder: str | Path) -> tuple[DKT, dict[str, Any]]:
    folder = Path(folder)
    meta = json.loads((folder / MODEL_JSON).read_text())
    hp = meta["student"]
    model = build_student("dkt", {**hp, "num_skills": len(meta["skill_ids"]),
                                  "num_items": len(meta.get("item_skill", []))})
    model.load_state_dict(torch.load(folder / WEIGHTS, weights_only=True))
    return model.eval(), meta


def trial_grid(search: KTSearchConfig) -> list[dict[str, float]]:
    """Every KD setting per hidden size, and one no-KD twin per hidden size (temperature means nothing there),
    each with every seed."""
    grid = []
    for hidden in search.hidden:
        settings = [(0.0, 1.0)] + [(lam, t) for lam in search.kd_weight if lam > 0 for t in search.temperature]
        grid += [{"hidden": hidden, "kd_weight": lam, "temperature": t, "seed": seed}
                 for lam, t in settings for seed in search.seeds]
    return grid


def _trainable(config: dict[str, Any], train: list[Sequence], validation: list[Sequence], index: KTIndex,
               soft: SoftLabels, base: dict[str, Any]) -> None:
    import ray.tune

    torch.set_num_threads(1)
    hp = KTStudentConfig(**{**base, **config["params"]})

    def report(epoch: int, metrics: dict[str, float]) -> None:
        ray.tune.report({**metrics, "epoch": epoch})

    model, best_auc, best_epoch = fit_student(train, validation, index, soft, hp, report)
    say("kt-distill", f"trial done: hidden {hp.hidden}, lambda {hp.kd_weight:g}, T {hp.temperature:g}, seed "
                      f"{hp.seed}: best val AUC {best_auc:.4f} at epoch {best_epoch}")
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(model.state_dict(), Path(tmp) / WEIGHTS)
        ray.tune.report({"val_auc": best_auc, "best_val_auc": best_auc, "epoch": best_epoch, "final": 1},
                        checkpoint=ray.tune.Checkpoint.from_directory(tmp))


@dataclass
class Trial:
    hidden: int
    kd_weight: float
    temperature: float
    seed: int
    val_auc: float
    best_epoch: int
    weights: str  # the trial's checkpoint file


def search(train: list[Sequence], validation: list[Sequence], index: KTIndex, soft: SoftLabels,
           base: KTStudentConfig, space: KTSearchConfig, storage: str, name: str) -> list[Trial]:
    """One Ray Tune trial per grid point; each trial's best weights come back in its checkpoint."""
    import ray.tune

    from raykd.storage import checkpoint_folder, ray_storage

    trainable = ray.tune.with_resources(
        ray.tune.with_parameters(_trainable, train=train, validation=validation, index=index, soft=soft,
                                 base=asdict(base)),
        {"cpu": space.cpus_per_trial})
    tuner = ray.tune.Tuner(trainable, param_space={"params": ray.tune.grid_search(trial_grid(space))},
                           tune_config=ray.tune.TuneConfig(metric="val_auc", mode="max"),
                           run_config=ray.tune.RunConfig(name=name, **ray_storage(storage)))
    results = tuner.fit()
    trials = []
    for r in results:
        if r.error is not None or r.checkpoint is None:
            raise RuntimeError(f"a student trial failed: {r.error}")
        p = r.config["params"]
        trials.append(Trial(int(p["hidden"]), float(p["kd_weight"]), float(p["temperature"]), int(p["seed"]),
                            float(r.metrics["val_auc"]), int(r.metrics["epoch"]),
                            str(checkpoint_folder(r.checkpoint) / WEIGHTS)))
    return trials


def choose(results: list[KTStudentResult]) -> tuple[list[KTSetting], int, int]:
    """Settings (hidden, lambda, T) averaged over seeds; the index of the champion (the best-validation seed of
    the setting with the best mean validation AUC, no-KD twins competing too) and of its no-KD twin (the same
    hidden size, lambda 0, the same seed)."""
    groups: dict[tuple[int, float, float], list[int]] = {}
    for i, r in enumerate(results):
        groups.setdefault((r.hidden, r.kd_weight, r.temperature), []).append(i)
    settings = []
    for (hidden, lam, t), members in groups.items():
        tests = [results[i].test_auc for i in members]
        settings.append(KTSetting(hidden, lam, t, len(members), float(np.mean([results[i].val_auc for i in members])),
                                  float(np.mean(tests)), min(tests), max(tests)))
    best = max(settings, key=lambda x: x.val_auc_mean)
    champion = max(groups[(best.hidden, best.kd_weight, best.temperature)], key=lambda i: results[i].val_auc)
    twin = next(i for i in groups[(best.hidden, 0.0, 1.0)] if results[i].seed == results[champion].seed)
    return settings, champion, twin
