"""The knowledge-tracing teacher recipe: Ray Train `TorchTrainer` workers (DDP, gloo on CPU) fitting one member
(AttentionKT, or a large DKT), a checkpoint per epoch (model, optimizer, training state, best weights), early
stopping on validation AUC. The teacher is its members' mean (`raykd.kt.models.Ensemble`); its soft labels per step
(next-step probability and every skill's mastery) teach the students."""

from __future__ import annotations

import json
import math
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from raykd.kt.config import KTTeacherConfig
from raykd.kt.data import Sequence
from raykd.kt.models import AttentionKT, Batch, Ensemble, KTIndex, batches, make_batch, predict
from raykd.pipeline import say
from raykd.training import TrainState, torch_trainer

STATE = "state.json"
WEIGHTS = "weights.pt"  # a training checkpoint's
BEST = "best.pt"
MODEL_JSON = "model.json"


class NextStep(torch.nn.Module):
    """A network whose forward is its next-step logits [B, T-1]: what Ray Train wraps in DistributedDataParallel,
    so that every parameter the loss uses (the item difficulties too) is used inside the wrapped forward."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, b: Batch) -> torch.Tensor:
        return self.net.predict_step(b)[1]


def loss_on(model: torch.nn.Module, b: Batch) -> torch.Tensor:
    """Next-step BCE of a NextStep (as Ray Train wraps it: its forward keeps the workers in step)."""
    from raykd.distill.losses import sequence_kd

    _, gold, valid = b.targets
    return sequence_kd(model(b), gold, valid)


def build(model_cfg: dict[str, Any], knowledge: dict[str, np.ndarray]) -> torch.nn.Module:
    if model_cfg["family"] == "dkt":
        from raykd.students.architectures import build_student

        return build_student("dkt", model_cfg)
    return AttentionKT(model_cfg["num_skills"], knowledge["embeddings"], knowledge["graph"],
                       d_model=model_cfg["d_model"], layers=model_cfg["layers"], heads=model_cfg["heads"],
                       dropout=model_cfg["dropout"], num_items=model_cfg.get("num_items", 0))


TRAINING = ("epochs", "batch_size", "lr", "weight_decay", "patience")


def member_specs(cfg: KTTeacherConfig, num_skills: int, max_length: int, num_items: int = 0
                 ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(model config, training hyperparameters) of each candidate member: an AttentionKT per seed, then a DKT
    per recurrent width and seed."""
    shared = {"num_skills": num_skills, "max_length": max_length, "num_items": num_items}
    attention = {"family": "attention", **shared, **{k: getattr(cfg, k) for k in ("d_model", "layers", "heads",
                                                                                    "dropout")}}
    r = cfg.recurrent
    widths = r.hidden if isinstance(r.hidden, list) else [r.hidden]
    dkts = [{"family": "dkt", **shared, "embed": r.embed, "hidden": h, "dropout": r.dropout} for h in widths]
    return ([(attention, {**{k: getattr(cfg, k) for k in TRAINING}, "seed": s}) for s in cfg.seeds]
            + [(dkt, {**{k: getattr(r, k) for k in TRAINING}, "seed": s}) for dkt in dkts for s in r.seeds])


def select_members(val_probs: list[list[np.ndarray]], score: Any) -> list[int]:
    """Greedy forward selection (Caruana et al. 2004): start from the member `score` rates best on validation and
    add, one at a time, the member whose joining raises the mean's score most; stop when none does. Returns the
    chosen members' positions, in the order they joined."""
    def mean_of(chosen: list[int]) -> list[np.ndarray]:
        return [np.mean([val_probs[m][s] for m in chosen], axis=0) for s in range(len(val_probs[0]))]

    chosen = [max(range(len(val_probs)), key=lambda m: score(val_probs[m]))]
    best = score(val_probs[chosen[0]])
    while True:
        rest = [m for m in range(len(val_probs)) if m not in chosen]
        scored = [(score(mean_of([*chosen, m])), m) for m in rest]
        if not scored or max(scored)[0] <= best:
            return chosen
        best, m = max(scored)
        chosen.append(m)


def restore(net: torch.nn.Module, opt: Any, sched: Any, rank: int) -> tuple[TrainState, dict | None]:
    """The last reported checkpoint, if Ray Train restarted this worker: weights, optimizer, schedule, training
    state and the best weights so far (a fresh state otherwise)."""
    import ray.train

    ckpt = ray.train.get_checkpoint()
    if ckpt is None:
        return TrainState(), None
    with ckpt.as_directory() as d:
        saved = torch.load(Path(d) / WEIGHTS, weights_only=True)
        net.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        sched.load_state_dict(saved["scheduler"])
        state = TrainState(**json.loads((Path(d) / STATE).read_text()))
        best = torch.load(Path(d) / BEST, weights_only=True)
    if rank == 0:
        say("kt-teacher", f"resumed after epoch {state.epoch + 1}")
    return state, best


def train_loop_per_worker(config: dict[str, Any]) -> None:
    import ray.train
    import ray.train.torch
    from transformers import get_cosine_schedule_with_warmup

    torch.set_num_threads(int(config.get("threads", 1)))
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    hp = config["teacher"]
    torch.manual_seed(hp["seed"])
    train, val, index = config["train"], config["validation"], config["index"]
    net = build(config["model"], config["knowledge"])
    model = ray.train.torch.prepare_model(NextStep(net))
    opt = torch.optim.AdamW(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
    steps = math.ceil(len(batches(train, hp["batch_size"], 0)) / world) * hp["epochs"]
    sched = get_cosine_schedule_with_warmup(opt, max(1, steps // 20), steps)
    state, best = restore(net, opt, sched, rank)
    for epoch in range(state.epoch + 1, hp["epochs"]):
        model.train()
        t0, total, count = time.time(), 0.0, 0
        groups = batches(train, hp["batch_size"], seed=hp["seed"] + epoch)
        # Every rank takes the same number of steps (DDP all-reduces each one); the few left over change each epoch.
        for group in groups[:len(groups) // world * world][rank::world]:
            loss = loss_on(model, make_batch([train[i] for i in group], index))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            total, count = total + loss.item(), count + 1
        from raykd.kt.metrics import auc

        val_auc = auc(val, predict(net, val, index)[0])
        if state.record(epoch, val_auc):
            best = {k: v.detach().clone() for k, v in net.state_dict().items()}
        metrics = {"epoch": epoch + 1, "train/loss": total / max(count, 1), "val/auc": val_auc,
                   "best/auc": state.best_score, "epoch_seconds": time.time() - t0}
        state.history.append(metrics)
        with tempfile.TemporaryDirectory(prefix="raykd-kt-") as tmp:
            if rank == 0:
                say("kt-teacher", f"epoch {epoch + 1} loss {metrics['train/loss']:.4f} val AUC {val_auc:.4f} "
                                  f"(best {state.best_score:.4f}) {metrics['epoch_seconds']:.0f}s")
                torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(),
                            "scheduler": sched.state_dict()}, Path(tmp) / WEIGHTS)
                torch.save(best, Path(tmp) / BEST)
                (Path(tmp) / STATE).write_text(json.dumps(asdict(state)))
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
            else:
                ray.train.report(metrics)
        if state.should_stop(hp["patience"]):
            if rank == 0:
                say("kt-teacher", f"early stop: no better validation AUC for {hp['patience']} epoch(s)")
            break


def fit(train: list[Sequence], validation: list[Sequence], index: KTIndex, knowledge: dict[str, np.ndarray],
        model_cfg: dict[str, Any], teacher_cfg: dict[str, Any], scaling: Any, storage: str, name: str
        ) -> tuple[Path, TrainState]:
    """Run the recipe on Ray Train (checkpoints in `storage`, a folder or an object store); returns the final
    checkpoint as a local folder and its training state."""
    from raykd.storage import checkpoint_folder

    trainer = torch_trainer(train_loop_per_worker, {"train": train, "validation": validation, "index": index,
                                                    "knowledge": knowledge, "model": model_cfg,
                                                    "teacher": teacher_cfg}, scaling, name, storage)
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"the teacher reported no checkpoint ({result.error})")
    folder = checkpoint_folder(result.checkpoint)
    return folder, TrainState(**json.loads((folder / STATE).read_text()))


def save_model(folder: Path, members: list[tuple[dict[str, Any], dict[str, torch.Tensor]]], extra: dict[str, Any]
               ) -> None:
    """Each member's weights (`member_<i>.pt`) and its model config (in model.json)."""
    from raykd.io import atomic_dir

    with atomic_dir(folder) as tmp:
        for i, (_, weights) in enumerate(members):
            torch.save(weights, tmp / f"member_{i}.pt")
        (tmp / MODEL_JSON).write_text(json.dumps({"members": [c for c, _ in members], **extra}, indent=2))


def load_model(folder: str | Path) -> tuple[Ensemble, dict[str, Any]]:
    folder = Path(folder)
    meta = json.loads((folder / MODEL_JSON).read_text())
    if "members" not in meta:
        from raykd.errors import RaykdError

        raise RaykdError(f"{folder}: a teacher saved before teachers had members; rerun `raykd kt-teacher`")
    members = []
    for i, model_cfg in enumerate(meta["members"]):
        weights = torch.load(folder / f"member_{i}.pt", weights_only=True)
        knowledge = ({"embeddings": weights["llm"][1:].numpy(), "graph": weights["graph"].numpy()}
                     if "llm" in weights else {})
        member = build(model_cfg, knowledge)
        member.load_state_dict(weights)
        members.append(member)
    return Ensemble(members).eval(), meta
