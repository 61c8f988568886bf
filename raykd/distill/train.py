"""Fit one student: gold labels and teacher probabilities mixed by kd_weight, early stopping on validation.

The function is plain PyTorch in one process (students are tiny), so the distill job, Ray Tune trials and
tests all call the same code. Rows without a gold label (the teacher-scored unscored responses) add the
soft term only; with kd_weight = 0 they are left out and the fit is the no-KD baseline.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from raykd.config import DistillConfig, StudentConfig
from raykd.data.dataset import MULTICLASS
from raykd.distill.losses import hard_loss, load_balance, mix, soft_loss
from raykd.students.artifact import build_student, save_student
from raykd.students.vocab import Vocabulary, student_inputs
from raykd.tasks import TaskLayout, evaluate, primary, probabilities, tune_thresholds


@dataclass
class FitResult:
    model: torch.nn.Module
    arch: str
    vocab: Vocabulary
    layout: TaskLayout
    thresholds: dict[str, list[float]]
    val_metrics: dict[str, float]
    val_score: float
    best_epoch: int
    epochs_run: int
    seconds: float
    max_len: int
    include_question: bool = False
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def parameters(self) -> int:
        return int(sum(p.numel() for p in self.model.parameters()))


def build_vocab(cfg: StudentConfig, texts: list[str], teacher_tokenizer: str | None = None) -> Vocabulary:
    return Vocabulary.build(texts, cfg.vocab_size, cfg.min_freq, cfg.tokenizer,
                            teacher_tokenizer if cfg.tokenizer == "wordpiece" else None)


def make_model(cfg: StudentConfig, vocab_size: int, layout: TaskLayout) -> torch.nn.Module:
    if cfg.arch == "lstm":
        spec = dict(vocab_size=vocab_size, num_outputs=layout.total, embed_dim=cfg.embed_dim, hidden=cfg.hidden,
                    layers=cfg.layers, bidirectional=cfg.bidirectional, dropout=cfg.dropout)
    else:
        spec = dict(vocab_size=vocab_size, num_outputs=layout.total, num_tasks=len(layout.tasks),
                    embed_dim=cfg.embed_dim, hidden=cfg.hidden, num_experts=cfg.num_experts,
                    expert_hidden=cfg.expert_hidden, task_embed_dim=cfg.task_embed_dim, dropout=cfg.dropout)
    return build_student(cfg.arch, spec)


class Encoded:
    """Token ids, task ids, gold labels and teacher vectors of a frame, ready for batching."""

    def __init__(self, frame: pd.DataFrame, vocab: Vocabulary, layout: TaskLayout, max_len: int,
                 include_question: bool = False):
        self.frame = frame.reset_index(drop=True)
        texts = student_inputs(self.frame["text"].tolist(), self.frame["question"].tolist(), include_question)
        self.ids = [vocab.encode([t], max_len)[0] for t in texts]
        index = {t: i for i, t in enumerate(layout.names)}
        self.task_ids = torch.tensor([index[t] for t in self.frame["task"]], dtype=torch.long)
        self.tasks = self.frame["task"].to_numpy()
        self.y = self.frame["y"].tolist()
        self.soft = self.frame["soft"].tolist() if "soft" in self.frame else [None] * len(self.frame)

    def __len__(self) -> int:
        return len(self.frame)

    def batch_ids(self, rows: np.ndarray) -> torch.Tensor:
        width = max(len(self.ids[i]) for i in rows)
        out = torch.zeros((len(rows), width), dtype=torch.long)
        for j, i in enumerate(rows):
            out[j, : len(self.ids[i])] = self.ids[i]
        return out


def batch_objective(out: dict[str, torch.Tensor], data: Encoded, rows: np.ndarray, layout: TaskLayout,
                    cfg: DistillConfig) -> torch.Tensor:
    """mix(hard, soft, kd_weight) over the batch's tasks, plus the MoE balance term when there is a gate."""
    logits = out["logits"]
    hard_terms, soft_terms = [], []
    for task in np.unique(data.tasks[rows]):
        spec = layout.spec(task)
        local = np.flatnonzero(data.tasks[rows] == task)
        lg = logits[torch.as_tensor(local), layout.span(task)]
        gold = [k for k in local if data.y[rows[k]] is not None]
        if gold:
            target = torch.tensor([data.y[rows[k]] for k in gold])
            pos = torch.as_tensor(np.searchsorted(local, gold))
            hard_terms.append((hard_loss(lg[pos], target, spec.kind), len(gold)))
        taught = [k for k in local if data.soft[rows[k]] is not None]
        if taught and cfg.kd_weight > 0:
            teacher = torch.as_tensor(np.stack([data.soft[rows[k]] for k in taught]))
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
    parts = []
    for start in range(0, len(data), batch_size):
        rows = np.arange(start, min(start + batch_size, len(data)))
        parts.append(model(data.batch_ids(rows), data.task_ids[rows])["logits"].numpy())
    model.train()
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def score(logits: np.ndarray, data: Encoded, layout: TaskLayout, thresholds: dict[str, list[float]] | None = None,
          tune: bool = False) -> tuple[dict[str, float], dict[str, list[float]], float]:
    """Per-task metrics (`{task}/{metric}`), thresholds (tuned when `tune`), and the mean primary metric."""
    out: dict[str, float] = {}
    thresholds = dict(thresholds or {})
    primaries = []
    for task in layout.names:
        rows = np.flatnonzero((data.tasks == task) & np.array([y is not None for y in data.y], dtype=bool))
        if not len(rows):
            continue
        spec = layout.spec(task)
        probs = probabilities(logits[rows][:, layout.span(task)], spec)
        y = np.asarray([data.y[i] for i in rows])
        if spec.kind != MULTICLASS and tune:
            thresholds[task] = tune_thresholds(probs, y)
        scores = evaluate(probs, y, spec, thresholds.get(task))
        out.update({f"{task}/{k}": v for k, v in scores.items()})
        primaries.append(scores[primary(spec)])
    return out, thresholds, float(np.mean(primaries)) if primaries else float("nan")


def fit_student(scfg: StudentConfig, dcfg: DistillConfig, train: pd.DataFrame, validation: pd.DataFrame,
                layout: TaskLayout, teacher_tokenizer: str | None = None,
                on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> FitResult:
    """Train one student. `train` may hold unlabelled rows (y None) with teacher vectors in `soft`."""
    torch.manual_seed(dcfg.seed)
    torch.set_num_threads(max(1, dcfg.threads))
    rng = np.random.default_rng(dcfg.seed)
    if dcfg.kd_weight == 0 or not dcfg.use_unlabelled:
        train = train[train["y"].notna()]
    if dcfg.kd_weight > 0 and ("soft" not in train or train["soft"].isna().any()):
        raise ValueError("knowledge distillation needs teacher probabilities for every training row")
    inputs = student_inputs(train["text"].tolist(), train["question"].tolist(), scfg.include_question)
    vocab = build_vocab(scfg, inputs, teacher_tokenizer)
    model = make_model(scfg, len(vocab), layout)
    tr = Encoded(train, vocab, layout, scfg.max_len, scfg.include_question)
    va = Encoded(validation, vocab, layout, scfg.max_len, scfg.include_question)
    n_params = int(sum(p.numel() for p in model.parameters()))
    opt = torch.optim.Adam(model.parameters(), lr=dcfg.lr, weight_decay=dcfg.weight_decay)
    best_state, best_score, best_epoch, bad = None, -math.inf, -1, 0
    best_metrics: dict[str, float] = {}
    best_thresholds: dict[str, list[float]] = {}
    history = []
    t0 = time.time()
    epoch = -1
    for epoch in range(dcfg.epochs):
        model.train()
        order = rng.permutation(len(tr))
        losses = []
        for start in range(0, len(order), dcfg.batch_size):
            rows = order[start:start + dcfg.batch_size]
            out = model(tr.batch_ids(rows), tr.task_ids[rows])
            loss = batch_objective(out, tr, rows, layout, dcfg)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            losses.append(loss.item())
        metrics, thresholds, val_score = score(predict_logits(model, va), va, layout, tune=True)
        record = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_score": val_score,
                  "parameters": n_params}
        history.append(record)
        if on_epoch is not None:
            on_epoch(epoch + 1, {**record, **{f"val/{k}": v for k, v in metrics.items()}})
        if val_score > best_score:
            best_state, best_score, best_epoch, bad = copy.deepcopy(model.state_dict()), val_score, epoch, 0
            best_metrics, best_thresholds = metrics, thresholds
        else:
            bad += 1
            if bad >= dcfg.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return FitResult(model, scfg.arch, vocab, layout, best_thresholds, best_metrics, best_score, best_epoch + 1,
                     epoch + 1, time.time() - t0, scfg.max_len, scfg.include_question, history)


def evaluate_frame(fit: Any, frame: pd.DataFrame) -> tuple[dict[str, float], float]:
    """Metrics of a fitted student (a FitResult or a loaded StudentScorer) on the labelled rows of `frame`."""
    data = Encoded(frame, fit.vocab, fit.layout, fit.max_len, fit.include_question)
    metrics, _, s = score(predict_logits(fit.model, data), data, fit.layout, fit.thresholds)
    return metrics, s


def save_fit(fit: FitResult, out_dir: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Save a fitted student as a self-describing artifact (see raykd.students.artifact)."""
    return save_student(out_dir, fit.model, fit.arch, fit.vocab, fit.layout, fit.thresholds, fit.max_len,
                        extra=extra, include_question=fit.include_question)
