"""Teacher fine-tuning: Ray Train `TorchTrainer` workers running DeepSpeed ZeRO.

`train_loop_per_worker` is the per-worker recipe: build tokenizer and model, wrap them in a DeepSpeed
engine (ZeRO stage 2/3, optional CPU offload, bf16 on GPU, fp32 on CPU), train on this worker's shard,
evaluate on validation every epoch (all ranks take part, as ZeRO-3 needs), tune multi-label thresholds,
stop early, and report a checkpoint every epoch. A checkpoint holds the DeepSpeed state of the trainable
parameters (frozen LLM weights are not copied) plus the best model so far as a loadable artifact, so a
killed worker resumes from the last epoch and the final checkpoint is the trained teacher.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from raykd.config import TeacherJobConfig, from_dict
from raykd.data.dataset import MULTICLASS
from raykd.distill.losses import hard_loss
from raykd.io import copy_dir_atomic
from raykd.tasks import TaskLayout, evaluate, primary, probabilities, tune_thresholds
from raykd.teacher.model import build_model, build_tokenizer, count_parameters, format_inputs

STATE_FILE = "raykd_state.json"
BEST_DIR = "best"
DS_TAG = "state"


def say(message: str) -> None:
    """Progress for a person to follow. Written to stdout directly: Ray Train V2 patches `print` into its
    logger, which the driver then shows twice."""
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------------------------- batching
def shard_indices(n: int, rank: int, world: int, seed: int | None) -> np.ndarray:
    """This rank's rows; every rank gets the same count (wrapping around) so collectives stay in step."""
    order = np.random.default_rng(seed).permutation(n) if seed is not None else np.arange(n)
    per_rank = math.ceil(n / world)
    padded = np.resize(order, per_rank * world)
    return padded[rank * per_rank:(rank + 1) * per_rank]


def chunks(idx: np.ndarray, size: int) -> list[np.ndarray]:
    return [idx[i:i + size] for i in range(0, len(idx), size)]


def encode(tokenizer: Any, frame: pd.DataFrame, rows: np.ndarray, cfg: TeacherJobConfig,
           device: torch.device) -> dict[str, torch.Tensor]:
    sub = frame.iloc[rows]
    texts = format_inputs(sub["text"].tolist(), sub["question"].tolist(), sub["reference"].tolist(),
                          cfg.model.include_question)
    enc = tokenizer(texts, padding=True, truncation=True, max_length=cfg.model.max_length, return_tensors="pt")
    return {k: v.to(device) for k, v in enc.items()}


def batch_loss(logits: torch.Tensor, sub: pd.DataFrame, layout: TaskLayout,
               pos_weights: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean hard loss over the batch, each row scored by its own task's head slice."""
    total = logits.new_zeros(())
    tasks = sub["task"].to_numpy()
    for task in np.unique(tasks):
        idx = np.flatnonzero(tasks == task)
        spec = layout.spec(task)
        ys = sub["y"].iloc[idx].tolist()
        target = torch.tensor(ys, device=logits.device)
        lg = logits[torch.as_tensor(idx, device=logits.device), layout.span(task)].float()
        total = total + hard_loss(lg, target, spec.kind, pos_weights.get(task)) * (len(idx) / len(sub))
    return total


# ------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def predict_logits(engine: Any, tokenizer: Any, frame: pd.DataFrame, cfg: TeacherJobConfig, rank: int,
                   world: int, device: torch.device) -> np.ndarray:
    """Logits for every row of `frame`, computed in parallel shards and gathered on all ranks."""
    import torch.distributed as dist

    engine.eval()
    mine = shard_indices(len(frame), rank, world, seed=None)
    parts = []
    for rows in chunks(mine, cfg.export.batch_size):
        parts.append(engine(**encode(tokenizer, frame, rows, cfg, device)).logits.float().cpu().numpy())
    local = (mine, np.concatenate(parts) if parts else np.zeros((0, 0), np.float32))
    gathered: list[Any] = [None] * world
    if world > 1:
        dist.all_gather_object(gathered, local)
    else:
        gathered = [local]
    out = np.zeros((len(frame), gathered[0][1].shape[1]), np.float32)
    for idx, lg in gathered:
        out[idx] = lg
    engine.train()
    return out


def task_probs(logits: np.ndarray, frame: pd.DataFrame, layout: TaskLayout, task: str) -> np.ndarray:
    rows = (frame["task"] == task).to_numpy()
    spec = layout.spec(task)
    return probabilities(logits[rows][:, layout.span(task)], spec)


def validation_metrics(logits: np.ndarray, frame: pd.DataFrame, layout: TaskLayout,
                       cfg: TeacherJobConfig) -> tuple[dict[str, float], dict[str, list[float]], float]:
    """Per-task metrics (prefixed `val/{task}/`), tuned thresholds, and the mean primary metric."""
    out: dict[str, float] = {}
    thresholds: dict[str, list[float]] = {}
    primaries = []
    for task in sorted(set(frame["task"])):
        spec = layout.spec(task)
        probs = task_probs(logits, frame, layout, task)
        y = np.asarray(frame.loc[frame["task"] == task, "y"].tolist())
        if spec.kind != MULTICLASS:
            thresholds[task] = (tune_thresholds(probs, y) if cfg.train.tune_thresholds
                                else [cfg.train.threshold] * spec.num_outputs)
        scores = evaluate(probs, y, spec, thresholds.get(task))
        out.update({f"val/{task}/{k}": v for k, v in scores.items()})
        primaries.append(scores[primary(spec)])
    score = float(np.mean(primaries)) if primaries else float("nan")
    out["val/score"] = score
    return out, thresholds, score


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
        "zero_allow_untested_optimizer": True,  # our AdamW param groups (backbone vs head learning rates)
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def build_optimizer(model: torch.nn.Module, cfg: TeacherJobConfig, total_steps: int) -> tuple[Any, Any]:
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

    def schedule(step: int) -> float:  # linear warmup, then linear decay to zero
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


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


# ---------------------------------------------------------------------------------------- the recipe
def train_loop_per_worker(config: dict[str, Any]) -> None:
    import deepspeed
    import ray.train

    from raykd.teacher.artifact import save_teacher

    cfg = from_dict(TeacherJobConfig, config["cfg"], "config")
    layout = TaskLayout.from_list(config["tasks"])
    train_df: pd.DataFrame = config["train"]
    val_df: pd.DataFrame = config["validation"]
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
    n_total, n_trainable = count_parameters(model)

    per_rank = math.ceil(len(train_df) / world)
    steps_per_epoch = math.ceil(per_rank / cfg.train.batch_size)
    if cfg.train.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, cfg.train.max_steps_per_epoch)
    total_steps = max(1, steps_per_epoch * cfg.train.epochs // cfg.train.grad_accum)
    optimizer, scheduler = build_optimizer(model, cfg, total_steps)
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=scheduler,
                                           config=ds_config)
    base = gather_params(engine, rank, frozen=True) if cfg.model.tiny and cfg.model.keep_random_base else None
    del zero_init
    pos_weights = positive_weights(train_df, layout, device) if cfg.train.pos_weight else {}

    state = {"epoch": -1, "best_score": -math.inf, "best_epoch": -1, "bad_epochs": 0, "history": []}
    best_thresholds: dict[str, list[float]] = {}
    best_weights: dict[str, torch.Tensor] | None = None
    ckpt = ray.train.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            engine.load_checkpoint(d, tag=DS_TAG, load_module_strict=False)
            state = json.loads((Path(d) / STATE_FILE).read_text())
            best_thresholds = state.get("best_thresholds", {})
            if rank == 0 and (Path(d) / BEST_DIR / "trainable.safetensors").exists():
                from safetensors.torch import load_file

                best_weights = load_file(Path(d) / BEST_DIR / "trainable.safetensors")
        if rank == 0:
            say(f"[teacher] resumed from checkpoint after epoch {state['epoch'] + 1}")
        if state.get("finished"):
            return

    mlflow_client = _mlflow(config) if rank == 0 else None
    for epoch in range(state["epoch"] + 1, cfg.train.epochs):
        engine.train()
        mine = shard_indices(len(train_df), rank, world, seed=cfg.train.seed + epoch)
        batches = chunks(mine, cfg.train.batch_size)[:steps_per_epoch]
        t0, seen, running = time.time(), 0, 0.0
        t1, seen1 = t0, 0  # after the first step: the steady rate leaves out one-off warm-up (kernels, caches)
        for step, rows in enumerate(batches):
            _maybe_kill(cfg, rank, epoch, step, config.get("chaos_marker"))
            sub = train_df.iloc[rows]
            logits = engine(**encode(tokenizer, train_df, rows, cfg, device)).logits
            loss = batch_loss(logits, sub, layout, pos_weights)
            engine.backward(loss)
            engine.step()
            seen += len(rows) * world
            running = 0.9 * running + 0.1 * loss.item() if step else loss.item()
            if step == 0:
                t1, seen1 = time.time(), seen
            if rank == 0 and (step % cfg.train.log_every == 0 or step == len(batches) - 1):
                rate = seen / max(1e-9, time.time() - t0)
                eta = (len(batches) - step - 1) * len(rows) * world / max(rate, 1e-9)
                say(f"[teacher] epoch {epoch + 1}/{cfg.train.epochs} step {step + 1}/{len(batches)} "
                    f"loss {running:.4f} {rate:.1f} samples/s epoch ETA {eta:.0f}s")
        train_time = time.time() - t0
        logits = predict_logits(engine, tokenizer, val_df, cfg, rank, world, device)
        metrics, thresholds, score = validation_metrics(logits, val_df, layout, cfg)
        improved = score > state["best_score"]
        weights = gather_params(engine, rank)
        if improved:
            state.update(best_score=score, best_epoch=epoch, bad_epochs=0)
            best_weights, best_thresholds = weights, thresholds
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch
        state["best_thresholds"] = best_thresholds
        metrics.update({"epoch": epoch + 1, "train/loss": running, "train/samples_per_s": seen / train_time,
                        "train/steady_samples_per_s": ((seen - seen1) / max(1e-9, t0 + train_time - t1)
                                                       if seen > seen1 else float("nan")),
                        "best/score": state["best_score"], "best/epoch": state["best_epoch"] + 1})
        if on_gpu:
            metrics["gpu/max_memory_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
        state["history"].append({k: v for k, v in metrics.items() if isinstance(v, int | float)})
        if rank == 0:
            say(f"[teacher] epoch {epoch + 1} val score {score:.4f} (best {state['best_score']:.4f} "
                f"at epoch {state['best_epoch'] + 1})")
            if mlflow_client is not None:
                _log_epoch(mlflow_client, config["mlflow_run_id"], metrics, epoch + 1)
        stop = state["bad_epochs"] >= cfg.train.patience or epoch == cfg.train.epochs - 1
        with tempfile.TemporaryDirectory(prefix="raykd-ckpt-") as tmp:
            engine.save_checkpoint(tmp, tag=DS_TAG, exclude_frozen_parameters=True)
            if rank == 0:
                (Path(tmp) / STATE_FILE).write_text(json.dumps({**state, "finished": stop}))
                save_teacher(Path(tmp) / BEST_DIR, model_cfg=cfg.model, lora_cfg=cfg.lora, layout=layout,
                             thresholds=best_thresholds, trainable=best_weights or weights, base=base,
                             tokenizer=tokenizer, parameters={"total": n_total, "trainable": n_trainable},
                             seed=cfg.train.seed, extra={"best_epoch": state["best_epoch"] + 1,
                                                         "val_score": state["best_score"]})
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
        # Wait until the controller has committed this checkpoint: a worker dying right after `report`
        # would otherwise lose it (results reach the controller by polling) and restart an epoch earlier.
        ray.train.get_all_reported_checkpoints(ray.train.CheckpointConsistencyMode.COMMITTED, timeout_s=300)
        if stop:
            if rank == 0 and state["bad_epochs"] >= cfg.train.patience:
                say(f"[teacher] early stop: no improvement for {cfg.train.patience} epoch(s)")
            break


def positive_weights(frame: pd.DataFrame, layout: TaskLayout, device: torch.device) -> dict[str, torch.Tensor]:
    out = {}
    for spec in layout.tasks:
        if spec.kind == MULTICLASS or not (frame["task"] == spec.name).any():
            continue
        y = np.asarray(frame.loc[frame["task"] == spec.name, "y"].tolist(), dtype=np.float32)
        pos = y.sum(axis=0)
        out[spec.name] = torch.tensor((len(y) - pos) / np.maximum(pos, 1.0), device=device)
    return out


def _maybe_kill(cfg: TeacherJobConfig, rank: int, epoch: int, step: int, marker: str | None) -> None:
    """Tests only: SIGKILL this worker once at the configured point, as a crashed node would die."""
    chaos = cfg.chaos
    if not chaos or marker is None:
        return
    point = (chaos.get("kill_rank", 1), chaos.get("at_epoch", 1), chaos.get("at_step", 0))
    if (rank, epoch, step) == point and not os.path.exists(marker):
        Path(marker).write_text(f"killed rank {rank} at epoch {epoch} step {step}\n")
        say(f"[teacher] chaos: killing worker rank {rank} (pid {os.getpid()})")
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


def read_state(checkpoint_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(checkpoint_dir) / STATE_FILE).read_text())
