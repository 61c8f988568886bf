"""Fit one student: gold labels and teacher probabilities mixed by kd_weight, early stopping on validation.

The function is plain PyTorch in one process (students are tiny), so the distill job, Ray Tune trials and
tests all call the same code. Rows without a gold label (the teacher-scored unscored responses) add the
soft term only; with kd_weight = 0 they are left out and the fit is the no-KD baseline.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from raykd.confidence import Calibration, fit_calibration, review_policy
from raykd.config import ReviewConfig
from raykd.distill.config import DistillConfig, StudentConfig
from raykd.distill.losses import hard_loss, load_balance, mix, soft_loss
from raykd.evaluation import TaskScores, score_tasks
from raykd.heads import TaskLayout, row_probabilities, unit_scale
from raykd.inputs import SEP, InputFormat
from raykd.students.architectures import make_model
from raykd.students.artifact import save_student
from raykd.students.embeddings import init_from_teacher
from raykd.students.vocab import Vocabulary
from raykd.training import TrainState, count_parameters


@dataclass
class FitResult:
    model: torch.nn.Module
    arch: str
    vocab: Vocabulary
    layout: TaskLayout
    validation: TaskScores  # at the best epoch; its thresholds are the student's
    best_epoch: int
    epochs_run: int
    seconds: float
    max_len: int
    inputs: InputFormat = InputFormat()
    history: list[dict[str, float]] = field(default_factory=list)
    calibration: Calibration | None = None  # fitted on responses it did not train on (`calibrate`)

    @property
    def parameters(self) -> int:
        return count_parameters(self.model)[0]

    @property
    def thresholds(self) -> dict[str, list[float]]:
        return self.validation.thresholds

    @property
    def val_score(self) -> float:
        return self.validation.score


def build_vocab(cfg: StudentConfig, texts: list[str], teacher_model: str | None = None) -> Vocabulary:
    """The student's vocabulary: its own words, or the sub-words of the teacher saved at `teacher_model`."""
    reserved = [SEP] if cfg.pair else []  # the pair student finds its two sides at SEP_ID
    if cfg.tokenizer == "words":
        return Vocabulary.build(texts, cfg.vocab_size, cfg.min_freq, "words", reserved=reserved)
    if not teacher_model:
        raise ValueError("a wordpiece student needs the teacher's model folder (its tokenizer)")
    from raykd.students.embeddings import tokenizer_folder

    return Vocabulary.build(texts, cfg.vocab_size, cfg.min_freq, "wordpiece", str(tokenizer_folder(teacher_model)),
                            reserved)


@dataclass
class Batch:
    rows: np.ndarray  # positions in the Encoded frame
    ids: torch.Tensor  # (batch, longest) token ids, right-padded with 0
    task_ids: torch.Tensor


class Encoded:
    """Token ids, task ids, gold labels and teacher vectors of a frame; `loader` batches it with padding."""

    def __init__(self, frame: pd.DataFrame, vocab: Vocabulary, layout: TaskLayout, max_len: int,
                 inputs: InputFormat | None = None):
        self.frame = frame.reset_index(drop=True)
        f = self.frame
        texts = (inputs or InputFormat())(f["text"].tolist(), f["question"].tolist(), f["reference"].tolist())
        self.ids = [torch.tensor(x, dtype=torch.long) for x in vocab.ids(texts, max_len)]
        index = {t: i for i, t in enumerate(layout.names)}
        self.task_ids = torch.tensor([index[t] for t in self.frame["task"]], dtype=torch.long)
        self.tasks = self.frame["task"].to_numpy()
        self.y = self.frame["y"].tolist()
        self.soft = self.frame["soft"].tolist() if "soft" in self.frame else [None] * len(self.frame)

    def __len__(self) -> int:
        return len(self.frame)

    def collate(self, rows: list[int]) -> Batch:
        rows_arr = np.asarray(rows)
        ids = torch.nn.utils.rnn.pad_sequence([self.ids[i] for i in rows], batch_first=True, padding_value=0)
        return Batch(rows_arr, ids, self.task_ids[rows_arr])

    def loader(self, batch_size: int, shuffle: bool = False, seed: int = 0) -> DataLoader:
        generator = torch.Generator().manual_seed(seed) if shuffle else None
        return DataLoader(range(len(self)), batch_size=batch_size, shuffle=shuffle, generator=generator,
                          collate_fn=self.collate)


def batch_objective(out: dict[str, torch.Tensor], data: Encoded, rows: np.ndarray, layout: TaskLayout,
                    cfg: DistillConfig) -> torch.Tensor:
    """mix(hard, soft, kd_weight) over the batch's tasks, each term averaged over the rows that have it (gold
    labels for the hard term, teacher vectors for the soft one), plus the MoE balance term when there is a
    gate. With kd_weight 0 the loss is the hard term alone."""
    logits = out["logits"]
    hard_terms, soft_terms = [], []
    for task in np.unique(data.tasks[rows]):
        spec = layout.spec(task)
        local = np.flatnonzero(data.tasks[rows] == task)
        lg = logits[torch.as_tensor(local), layout.span(task)]
        gold = [k for k in local if data.y[rows[k]] is not None]
        if gold:
            target = torch.as_tensor(unit_scale(np.asarray([data.y[rows[k]] for k in gold]), spec))
            pos = torch.as_tensor(np.searchsorted(local, gold))
            hard_terms.append((hard_loss(lg[pos], target, spec.kind), len(gold)))
        taught = [k for k in local if data.soft[rows[k]] is not None]
        if taught and cfg.kd_weight > 0:
            teacher = torch.as_tensor(unit_scale(np.stack([data.soft[rows[k]] for k in taught]), spec))
            pos = torch.as_tensor(np.searchsorted(local, taught))
            soft_terms.append((soft_loss(lg[pos], teacher, spec.kind, cfg.objective, cfg.temperature,
                                         cfg.skew_alpha), len(taught)))
    zero = logits.new_zeros(())
    hard = sum(t * n for t, n in hard_terms) / max(1, sum(n for _, n in hard_terms)) if hard_terms else zero
    soft = sum(t * n for t, n in soft_terms) / max(1, sum(n for _, n in soft_terms)) if soft_terms else zero
    loss = mix(hard, soft, cfg.kd_weight, cfg.mix) if cfg.kd_weight > 0 else hard
    if "gate" in out and cfg.load_balance_weight > 0:
        loss = loss + cfg.load_balance_weight * load_balance(out["gate"])
    return loss


@torch.no_grad()
def predict_logits(model: torch.nn.Module, data: Encoded, batch_size: int = 256) -> np.ndarray:
    model.eval()
    parts = [model(b.ids, b.task_ids)["logits"].numpy() for b in data.loader(batch_size)]
    model.train()
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def score(model: torch.nn.Module, data: Encoded, layout: TaskLayout,
          thresholds: dict[str, list[float]] | None = None, tune: bool = False, intervals: bool = False) -> TaskScores:
    """The model's per-task metrics on the labelled rows of `data` (thresholds tuned here when `tune`;
    bootstrap intervals with `intervals`)."""
    probs = row_probabilities(predict_logits(model, data), list(data.tasks), layout)
    return score_tasks(probs, list(data.tasks), data.y, layout, thresholds, tune, intervals)


def fit_student(scfg: StudentConfig, dcfg: DistillConfig, train: pd.DataFrame, validation: pd.DataFrame,
                layout: TaskLayout, teacher_model: str | None = None,
                on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> FitResult:
    """Train one student. `train` may hold unlabelled rows (y None) with teacher vectors in `soft`; the best
    validation epoch is kept (early stopping after `patience` epochs without improvement). `teacher_model`: the
    teacher's saved model folder (or its location in an object store, fetched to this node when the student
    needs it), for a wordpiece vocabulary and teacher-initialised embeddings."""
    if teacher_model and (scfg.tokenizer != "words" or scfg.init_embeddings == "teacher"):
        from raykd.storage import localize

        teacher_model = str(localize(teacher_model))
    torch.manual_seed(dcfg.seed)
    torch.set_num_threads(max(1, dcfg.threads))
    if dcfg.kd_weight == 0 or not dcfg.use_unlabelled:
        train = train[train["y"].notna()]
    if dcfg.kd_weight > 0 and ("soft" not in train or train["soft"].isna().any()):
        raise ValueError("knowledge distillation needs teacher probabilities for every training row")
    fmt = scfg.inputs
    vocab = build_vocab(scfg, fmt(train["text"].tolist(), train["question"].tolist(), train["reference"].tolist()),
                        teacher_model)
    model = make_model(scfg, len(vocab), layout)
    if scfg.init_embeddings == "teacher":
        init_from_teacher(model, vocab, teacher_model, dcfg.seed)  # type: ignore[arg-type]
    tr = Encoded(train, vocab, layout, scfg.max_len, fmt)
    va = Encoded(validation, vocab, layout, scfg.max_len, fmt)
    n_params = count_parameters(model)[0]
    opt = torch.optim.Adam(model.parameters(), lr=dcfg.lr, weight_decay=dcfg.weight_decay)
    state, best_state, best = TrainState(), None, None
    t0 = time.time()
    epoch = -1
    for epoch in range(dcfg.epochs):
        model.train()
        losses = []
        for batch in tr.loader(dcfg.batch_size, shuffle=True, seed=dcfg.seed + epoch):
            loss = batch_objective(model(batch.ids, batch.task_ids), tr, batch.rows, layout, dcfg)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            losses.append(loss.item())
        scores = score(model, va, layout, tune=True)
        record = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_score": scores.score,
                  "parameters": n_params}
        state.history.append(record)
        if on_epoch is not None:
            on_epoch(epoch + 1, {**record, **scores.flat("val/")})
        if state.record(epoch, scores.score) or best_state is None:
            best_state, best = copy.deepcopy(model.state_dict()), scores
            state.best_epoch = epoch
        elif state.should_stop(dcfg.patience):
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return FitResult(model, scfg.arch, vocab, layout, best or TaskScores({}, {}, float("nan")), state.best_epoch + 1,
                     epoch + 1, time.time() - t0, scfg.max_len, fmt, state.history)


def evaluate_fit(fit: Any, frame: pd.DataFrame, intervals: bool = False) -> TaskScores:
    """A fitted student's (a FitResult or a loaded StudentScorer) per-task metrics on the labelled rows of
    `frame`, with its own thresholds (and bootstrap 95% intervals when `intervals`: test evaluations)."""
    data = Encoded(frame, fit.vocab, fit.layout, fit.max_len, fit.inputs)
    return score(fit.model, data, fit.layout, fit.thresholds, intervals=intervals)


def heldout_probabilities(fit: Any, frame: pd.DataFrame) -> tuple[list[np.ndarray], list[str], list[Any]]:
    """A fit's (or a loaded student's) probabilities on the labelled rows of `frame`, their tasks and labels."""
    labelled = frame[frame["y"].notna()]
    data = Encoded(labelled, fit.vocab, fit.layout, fit.max_len, fit.inputs)
    return row_probabilities(predict_logits(fit.model, data), list(data.tasks), fit.layout), list(data.tasks), data.y


def refit_thresholds(fit: FitResult, held: tuple[list[np.ndarray], list[str], list[Any]]) -> FitResult:
    """A copy of the fit whose decision thresholds (ordinal cut-points, multi-label thresholds) are fitted on
    `held`, responses it did not train on: a refit on every labelled response has no held-out split of its own,
    and thresholds fitted on what it learnt from would fit its over-confidence."""
    probs, tasks, gold = held
    tuned = score_tasks(probs, tasks, gold, fit.layout, tune=True)
    return dataclasses.replace(fit, validation=dataclasses.replace(fit.validation, thresholds=tuned.thresholds))


def calibrate(fit: FitResult, held: tuple[list[np.ndarray], list[str], list[Any]], cfg: ReviewConfig,
              source: str) -> FitResult:
    """A copy of the fit with its calibration (raykd.confidence) fitted on `held`: probabilities, tasks and
    labels of responses it did not train on (`heldout_probabilities`, or the out-of-fold ones of cross-validation)."""
    probs, tasks, gold = held
    return dataclasses.replace(fit, calibration=fit_calibration(fit.layout.tasks, probs, tasks, gold, source,
                                                                fit.thresholds, cfg.level, review_policy(cfg)))


def save_fit(fit: FitResult, out_dir: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Save a fitted student as a self-describing artifact (see raykd.students.artifact)."""
    return save_student(out_dir, fit.model, fit.arch, fit.vocab, fit.layout, fit.thresholds, fit.max_len,
                        extra=extra, inputs=fit.inputs, calibration=fit.calibration)
