"""Teacher fine-tuning: Ray Train `TorchTrainer` workers running DeepSpeed ZeRO.

`train_loop_per_worker` is the per-worker recipe, read top to bottom:

    setup      tokenizer, model (inside deepspeed.zero.Init under ZeRO-3), DeepSpeed engine with AdamW and
               transformers' linear warm-up/decay schedule
    restore    the last reported checkpoint, if Ray Train restarted this worker
    per epoch  train on this rank's shard -> validation logits gathered on every rank (ZeRO-3 needs all ranks)
               -> per-task metrics and tuned multi-label thresholds -> early-stopping state -> checkpoint
               (DeepSpeed state of the trainable parameters + the best model so far as a loadable artifact)

So a killed worker resumes from the last epoch, and the final checkpoint is the trained teacher.
"""

from __future__ import annotations

import json
import math
import os
import signal
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from raykd.config import from_dict
from raykd.data.dataset import MULTICLASS, MULTILABEL
from raykd.distill.losses import hard_loss
from raykd.errors import ConfigError
from raykd.evaluation import TaskScores, score_tasks
from raykd.heads import TaskLayout, continuous_start, row_probabilities, unit_scale
from raykd.io import copy_dir_atomic
from raykd.pipeline import say
from raykd.teacher.config import TeacherJobConfig, TrainConfig
from raykd.teacher.model import build_model, build_tokenizer, cpu_bf16, start_head, tokenize, training_dropout
from raykd.training import TrainState, count_parameters

STATE_FILE = "raykd_state.json"
BEST_DIR = "best"
DS_TAG = "state"


@dataclass(frozen=True)
class KillPoint:
    """Tests only: SIGKILL worker `rank` once at (`epoch`, `step`), as a crashed node would die."""

    rank: int = 1
    epoch: int = 1
    step: int = 0


# --------------------------------------------------------------------------------------------- batching
def shard_indices(n: int, rank: int, world: int, seed: int | None) -> np.ndarray:
    """This rank's rows; every rank gets the same count (wrapping around) so collectives stay in step."""
    order = np.random.default_rng(seed).permutation(n) if seed is not None else np.arange(n)
    per_rank = math.ceil(n / world)
    padded = np.resize(order, per_rank * world)
    return padded[rank * per_rank:(rank + 1) * per_rank]


def chunks(idx: np.ndarray, size: int) -> list[np.ndarray]:
    return [idx[i:i + size] for i in range(0, len(idx), size)]


def length_batches(idx: np.ndarray, lengths: np.ndarray, size: int, seed: int, window: int = 32) -> list[np.ndarray]:
    """Batches of similar lengths in random order: the (already shuffled) rows are cut into windows of `window`
    batches, sorted by length inside each window and cut into batches, and the batches are shuffled. Padding,
    most of a CPU step's work on short answers, shrinks; every rank gets the same number of batches."""
    out = []
    for start in range(0, len(idx), size * window):
        part = idx[start:start + size * window]
        out.extend(chunks(part[np.argsort(lengths[part], kind="stable")], size))
    return [out[i] for i in np.random.default_rng(seed).permutation(len(out))]


def encode(tokenizer: Any, frame: pd.DataFrame, rows: np.ndarray, cfg: TeacherJobConfig,
           device: torch.device) -> dict[str, torch.Tensor]:
    sub = frame.iloc[rows]
    enc = tokenize(tokenizer, cfg.model, sub["text"].tolist(), sub["question"].tolist(), sub["reference"].tolist())
    return {k: v.to(device) for k, v in enc.items()}


def batch_loss(logits: torch.Tensor, sub: pd.DataFrame, layout: TaskLayout,
               weights: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean hard loss over the batch, each row scored by its own task's head slice and weighted by its share."""
    total = logits.new_zeros(())
    tasks = sub["task"].to_numpy()
    for task in np.unique(tasks):
        idx = np.flatnonzero(tasks == task)
        spec = layout.spec(task)
        target = torch.as_tensor(unit_scale(np.asarray(sub["y"].iloc[idx].tolist()), spec), device=logits.device)
        lg = logits[torch.as_tensor(idx, device=logits.device), layout.span(task)].float()
        total = total + hard_loss(lg, target, spec.kind, weights.get(task)) * (len(idx) / len(sub))
    return total


def loss_weights(frame: pd.DataFrame, layout: TaskLayout, train: TrainConfig,
                 device: torch.device) -> dict[str, torch.Tensor]:
    """Per task, the hard loss's weights: BCE pos_weight (negatives / positives per label) for multi-label tasks
    when `pos_weight`; balanced class weights (capped) for multi-class tasks when `class_weight` is on."""
    from sklearn.utils.class_weight import compute_class_weight

    unknown = sorted(set(train.class_weight_tasks or []) - {spec.name for spec in layout.tasks})
    if unknown:
        raise ConfigError("train.class_weight_tasks", f"no task named {unknown[0]!r} in the data")
    out = {}
    for spec in layout.tasks:
        rows = frame["task"] == spec.name
        if not rows.any():
            continue
        if spec.kind == MULTILABEL and train.pos_weight:
            y = np.asarray(frame.loc[rows, "y"].tolist(), dtype=np.float32)
            pos = y.sum(axis=0)
            out[spec.name] = torch.tensor((len(y) - pos) / np.maximum(pos, 1.0), device=device)
        elif spec.kind == MULTICLASS and train.class_weight == "balanced" and (
                train.class_weight_tasks is None or spec.name in train.class_weight_tasks):
            y = frame.loc[rows, "y"].astype(int).to_numpy()
            present = np.unique(y)
            w = np.ones(len(spec.labels), dtype=np.float32)  # classes absent from training keep weight 1
            w[present] = compute_class_weight("balanced", classes=present, y=y)
            out[spec.name] = torch.tensor(np.minimum(w, train.class_weight_max), device=device)
    return out


# ------------------------------------------------------------------------------------------ DeepSpeed
def deepspeed_config(cfg: TeacherJobConfig, on_gpu: bool) -> dict[str, Any]:
    zero: dict[str, Any] = {"stage": cfg.deepspeed.zero_stage}
    if cfg.deepspeed.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": on_gpu}
    if cfg.deepspeed.offload_params:
        zero["offload_param"] = {"device": "cpu", "pin_memory": on_gpu}
    bf16 = on_gpu and cfg.model.dtype != "float32"
    return {
        "train_micro_batch_size_per_gpu": cfg.train.batch_size,
        "gradient_accumulation_steps": cfg.train.grad_accum,
        "gradient_clipping": cfg.train.max_grad_norm,
        "zero_optimization": zero,
        "bf16": {"enabled": bf16},
        # CPU mixed precision (model.cpu_bf16): DeepSpeed's own autocast, since its engine switches off an outer
        # torch.autocast; Linear layers also exchange their gradients in bf16.
        "torch_autocast": {"enabled": cpu_bf16(cfg.model, torch.device("cuda" if on_gpu else "cpu")),
                           "dtype": "bfloat16"},
        "zero_allow_untested_optimizer": True,  # our AdamW param groups (backbone vs head learning rates)
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def build_optimizer(model: torch.nn.Module, cfg: TeacherJobConfig, total_steps: int) -> tuple[Any, Any]:
    """AdamW with the head at its own learning rate, and a linear warm-up then linear decay to zero."""
    from transformers import get_linear_schedule_with_warmup

    head, body = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (head if any(h in name for h in ("classifier", "score")) else body).append(p)
    groups = [{"params": body, "lr": cfg.train.lr}, {"params": head, "lr": cfg.train.head_lr or cfg.train.lr}]
    groups = [g for g in groups if g["params"]]
    kwargs = dict(betas=tuple(cfg.train.betas), weight_decay=cfg.train.weight_decay)
    if cfg.deepspeed.offload_optimizer:
        from deepspeed.ops.adam import DeepSpeedCPUAdam

        optimizer = DeepSpeedCPUAdam(groups, adamw_mode=True, **kwargs)
    else:
        optimizer = torch.optim.AdamW(groups, **kwargs)
    warmup = max(1, int(cfg.train.warmup_ratio * total_steps))
    return optimizer, get_linear_schedule_with_warmup(optimizer, warmup, max(total_steps, warmup + 1))


def gather_params(engine: Any, rank: int, frozen: bool = False) -> dict[str, torch.Tensor]:
    """Full copies of the trainable (or, with `frozen`, the frozen) parameters on rank 0, gathering ZeRO-3
    partitions; other ranks get an empty dict."""
    import deepspeed

    named = [(n, p) for n, p in engine.module.named_parameters() if p.requires_grad != frozen]
    out: dict[str, torch.Tensor] = {}
    zero3 = getattr(engine, "zero_optimization_stage", lambda: 0)() == 3
    if zero3:
        # Evaluation leaves ZeRO-3 prefetches in flight on GPUs; gathering such a parameter fails.
        engine.empty_partition_cache()
    with deepspeed.zero.GatheredParameters([p for _, p in named], modifier_rank=None, enabled=zero3):
        if rank == 0:
            out = {n: p.detach().float().cpu().clone() for n, p in named}
    return out


# ------------------------------------------------------------------------------------------ one worker
@dataclass
class Worker:
    """Everything one Ray Train worker holds for the fit."""

    cfg: TeacherJobConfig
    layout: TaskLayout
    train: pd.DataFrame
    validation: pd.DataFrame
    rank: int
    world: int
    device: torch.device
    on_gpu: bool
    tokenizer: Any
    engine: Any
    parameters: dict[str, int]
    steps_per_epoch: int
    base: dict[str, torch.Tensor] | None
    loss_weights: dict[str, torch.Tensor]


def setup(config: dict[str, Any]) -> Worker:
    import deepspeed
    import ray.train

    cfg = from_dict(TeacherJobConfig, config["cfg"], "config")
    layout = TaskLayout.from_list(config["tasks"])
    # The dropout actually trained with, so the model folder records it too.
    cfg = replace(cfg, model=replace(cfg.model, dropout=training_dropout(cfg.model, layout)))
    train_df: pd.DataFrame = config["train"]
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    on_gpu = cfg.scaling.use_gpu and torch.cuda.is_available()
    device = torch.device(f"cuda:{ctx.get_local_rank()}") if on_gpu else torch.device("cpu")
    if on_gpu:
        torch.cuda.set_device(device)
    torch.manual_seed(cfg.train.seed)
    tokenizer = build_tokenizer(cfg.model)
    ds_config = deepspeed_config(cfg, on_gpu)
    zero_init = None
    if cfg.deepspeed.zero_stage == 3:
        from transformers.integrations.deepspeed import HfDeepSpeedConfig

        # Held while the model is built: transformers then constructs it inside deepspeed.zero.Init, so each
        # worker materialises only its shard of a 20B model instead of a full copy in host memory.
        zero_init = HfDeepSpeedConfig(ds_config)
    model = build_model(cfg.model, cfg.lora, layout.total, tokenizer, on_gpu, seed=cfg.train.seed)
    start = continuous_start(layout, train_df["task"].tolist(), train_df["y"].tolist())
    if start and not start_head(model, layout.total, start) and rank == 0:
        say("teacher", "the output head has no bias: continuous tasks start from the bottom of their range")
    n_total, n_trainable = count_parameters(model)
    steps_per_epoch = math.ceil(math.ceil(len(train_df) / world) / cfg.train.batch_size)
    if cfg.train.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, cfg.train.max_steps_per_epoch)
    total_steps = max(1, steps_per_epoch * cfg.train.epochs // cfg.train.grad_accum)
    optimizer, scheduler = build_optimizer(model, cfg, total_steps)
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=scheduler,
                                           config=ds_config)
    base = gather_params(engine, rank, frozen=True) if cfg.model.tiny and cfg.model.keep_random_base else None
    if rank == 0 and engine.torch_autocast_enabled():
        say("teacher", "computing in bf16 on CPU (model.cpu_bf16: DeepSpeed torch_autocast)")
    del zero_init
    return Worker(cfg, layout, train_df, config["validation"], rank, world, device, on_gpu, tokenizer, engine,
                  {"total": n_total, "trainable": n_trainable}, steps_per_epoch, base,
                  loss_weights(train_df, layout, cfg.train, device))


def restore(w: Worker) -> tuple[TrainState, dict[str, torch.Tensor] | None]:
    """The state and best weights of the last reported checkpoint (fresh ones when there is none)."""
    import ray.train

    ckpt = ray.train.get_checkpoint()
    if ckpt is None:
        return TrainState(), None
    best = None
    with ckpt.as_directory() as d:
        w.engine.load_checkpoint(d, tag=DS_TAG, load_module_strict=False)
        state = TrainState(**json.loads((Path(d) / STATE_FILE).read_text()))
        if w.rank == 0 and (Path(d) / BEST_DIR / "trainable.safetensors").exists():
            from safetensors.torch import load_file

            best = load_file(Path(d) / BEST_DIR / "trainable.safetensors")
    if w.rank == 0:
        say("teacher", f"resumed from checkpoint after epoch {state.epoch + 1}")
    return state, best


def train_epoch(w: Worker, epoch: int, kill: KillPoint | None, kill_marker: str | None) -> dict[str, float]:
    """One pass over this rank's shard; returns the loss and the samples/s (overall, and after step 1, which
    leaves out one-off warm-up such as kernel compilation and caches)."""
    w.engine.train()
    # Dropout draws from a stream fixed by (seed, epoch, rank): an epoch a restarted worker runs again from the
    # last checkpoint is the same epoch an unkilled run trains, so both end with the same weights.
    torch.manual_seed(w.cfg.train.seed * 100_003 + epoch * 101 + w.rank)
    mine = shard_indices(len(w.train), w.rank, w.world, seed=w.cfg.train.seed + epoch)
    if w.cfg.train.group_by_length:
        batches = length_batches(mine, w.train["text"].str.len().to_numpy(), w.cfg.train.batch_size,
                                 seed=w.cfg.train.seed + epoch)[:w.steps_per_epoch]
    else:
        batches = chunks(mine, w.cfg.train.batch_size)[:w.steps_per_epoch]
    t0, seen, running = time.time(), 0, 0.0
    t1, seen1 = t0, 0
    for step, rows in enumerate(batches):
        maybe_kill(kill, kill_marker, w.rank, epoch, step)
        logits = w.engine(**encode(w.tokenizer, w.train, rows, w.cfg, w.device)).logits
        loss = batch_loss(logits, w.train.iloc[rows], w.layout, w.loss_weights)
        w.engine.backward(loss)
        w.engine.step()
        seen += len(rows) * w.world
        running = 0.9 * running + 0.1 * loss.item() if step else loss.item()
        if step == 0:
            t1, seen1 = time.time(), seen
        if w.rank == 0 and (step % w.cfg.train.log_every == 0 or step == len(batches) - 1):
            rate = seen / max(1e-9, time.time() - t0)
            eta = (len(batches) - step - 1) * len(rows) * w.world / max(rate, 1e-9)
            say("teacher", f"epoch {epoch + 1}/{w.cfg.train.epochs} step {step + 1}/{len(batches)} "
                           f"loss {running:.4f} {rate:.1f} samples/s epoch ETA {eta:.0f}s")
    end = time.time()
    return {"train/loss": running, "train/samples_per_s": seen / max(1e-9, end - t0),
            "train/steady_samples_per_s": (seen - seen1) / max(1e-9, end - t1) if seen > seen1 else float("nan")}


@torch.no_grad()
def predict_logits(w: Worker, frame: pd.DataFrame) -> np.ndarray:
    """Logits for every row of `frame`, computed in parallel shards and gathered on all ranks."""
    import torch.distributed as dist

    w.engine.eval()
    mine = shard_indices(len(frame), w.rank, w.world, seed=None)
    mine = mine[np.argsort(frame["text"].str.len().to_numpy()[mine], kind="stable")]  # similar lengths pad little
    with torch.no_grad():
        parts = [w.engine(**encode(w.tokenizer, frame, rows, w.cfg, w.device)).logits.float().cpu().numpy()
                 for rows in chunks(mine, w.cfg.export.batch_size)]
    local = (mine, np.concatenate(parts) if parts else np.zeros((0, 0), np.float32))
    gathered: list[Any] = [local]
    if w.world > 1:
        gathered = [None] * w.world
        dist.all_gather_object(gathered, local)
    out = np.zeros((len(frame), gathered[0][1].shape[1]), np.float32)
    for idx, lg in gathered:
        out[idx] = lg
    return out


def evaluate_validation(w: Worker) -> TaskScores:
    """Per-task validation metrics; multi-label thresholds tuned here (or the configured one for all labels)."""
    frame = w.validation
    tasks = frame["task"].tolist()
    fixed = {t.name: [w.cfg.train.threshold] * t.num_outputs for t in w.layout.tasks if t.kind == MULTILABEL}
    return score_tasks(row_probabilities(predict_logits(w, frame), tasks, w.layout), tasks, frame["y"].tolist(),
                       w.layout, thresholds=fixed, tune=w.cfg.train.tune_thresholds)


def checkpoint(w: Worker, state: TrainState, best: dict[str, torch.Tensor], metrics: dict[str, Any]) -> None:
    """Report this epoch with a checkpoint (DeepSpeed state of the trainable parameters, the training state,
    the best model so far as an artifact) and wait until the controller has committed it: a worker dying
    right after `report` would otherwise lose it and restart an epoch earlier."""
    import ray.train

    from raykd.teacher.artifact import save_teacher

    with tempfile.TemporaryDirectory(prefix="raykd-ckpt-") as tmp:
        w.engine.save_checkpoint(tmp, tag=DS_TAG, exclude_frozen_parameters=True)
        if w.rank == 0:
            (Path(tmp) / STATE_FILE).write_text(json.dumps(asdict(state)))
            save_teacher(Path(tmp) / BEST_DIR, model_cfg=w.cfg.model, lora_cfg=w.cfg.lora, layout=w.layout,
                         thresholds=state.best_thresholds, trainable=best, base=w.base, tokenizer=w.tokenizer,
                         parameters=w.parameters, seed=w.cfg.train.seed,
                         extra={"best_epoch": state.best_epoch + 1, "val_score": state.best_score})
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
    ray.train.get_all_reported_checkpoints(ray.train.CheckpointConsistencyMode.COMMITTED, timeout_s=300)


# ---------------------------------------------------------------------------------------- the recipe
def train_loop_per_worker(config: dict[str, Any]) -> None:
    w = setup(config)
    kill = KillPoint(**config["kill"]) if config.get("kill") else None
    state, best = restore(w)
    if state.finished:
        return
    mlflow_client = _mlflow(config) if w.rank == 0 else None
    for epoch in range(state.epoch + 1, w.cfg.train.epochs):
        rates = train_epoch(w, epoch, kill, config.get("kill_marker"))
        scores = evaluate_validation(w)
        weights = gather_params(w.engine, w.rank)
        if state.record(epoch, scores.score):
            best, state.best_thresholds = weights, scores.thresholds
        state.finished = state.should_stop(w.cfg.train.patience) or epoch == w.cfg.train.epochs - 1
        metrics: dict[str, Any] = {**scores.flat("val/"), "epoch": epoch + 1, **rates,
                                   "best/score": state.best_score, "best/epoch": state.best_epoch + 1}
        if w.on_gpu:
            metrics["gpu/max_memory_gb"] = torch.cuda.max_memory_allocated(w.device) / 2**30
        state.history.append({k: v for k, v in metrics.items() if isinstance(v, int | float)})
        if w.rank == 0:
            say("teacher", f"epoch {epoch + 1} val score {scores.score:.4f} (best {state.best_score:.4f} at "
                           f"epoch {state.best_epoch + 1})")
            if mlflow_client is not None:
                _log_epoch(mlflow_client, config["mlflow_run_id"], metrics, epoch + 1)
        checkpoint(w, state, best or weights, metrics)
        if state.finished:
            if w.rank == 0 and state.should_stop(w.cfg.train.patience):
                say("teacher", f"early stop: no improvement for {w.cfg.train.patience} epoch(s)")
            break


def maybe_kill(kill: KillPoint | None, marker: str | None, rank: int, epoch: int, step: int) -> None:
    """Tests only (`run_teacher(kill_worker=...)`): SIGKILL this worker once at the given point."""
    if kill is None or marker is None or (rank, epoch, step) != (kill.rank, kill.epoch, kill.step):
        return
    from raykd import storage

    if not storage.exists(marker):  # the stage's storage: seen by a restarted worker on any node
        storage.write_text(marker, f"killed rank {rank} at epoch {epoch} step {step}\n")
        say("teacher", f"fault injection: killing worker rank {rank} (pid {os.getpid()})")
        os.kill(os.getpid(), signal.SIGKILL)


def _mlflow(config: dict[str, Any]) -> Any:
    if not config.get("mlflow_run_id"):
        return None
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=config["tracking_uri"])


def _log_epoch(client: Any, run_id: str, metrics: dict[str, Any], step: int) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    batch = [Metric(k.replace("/", "."), float(v), now, step) for k, v in metrics.items()
             if isinstance(v, int | float) and math.isfinite(float(v))]
    client.log_batch(run_id, metrics=batch)


def copy_best(checkpoint_dir: str | Path, out_dir: str | Path) -> Path:
    """Copy the trained teacher artifact out of the final checkpoint."""
    return copy_dir_atomic(Path(checkpoint_dir) / BEST_DIR, out_dir)


def read_state(checkpoint_dir: str | Path) -> TrainState:
    return TrainState(**json.loads((Path(checkpoint_dir) / STATE_FILE).read_text()))
