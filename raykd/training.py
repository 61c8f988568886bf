"""What every training recipe shares: the early-stopping state that survives a restart, the Ray Train trainer
built from a `ScalingConfig`, and the parameter count. The scorer teacher (raykd.teacher.train), the
knowledge-tracing teacher (raykd.kt.teacher) and the students' fits all use these."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raykd.config import ScalingConfig

POLL_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"  # ScalingConfig.report_poll_s


@dataclass
class TrainState:
    """Progress, the best validation score so far, and the per-epoch history: what a checkpoint carries so a
    restarted worker goes on where it stopped."""

    epoch: int = -1
    best_score: float = -math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best_thresholds: dict[str, list[float]] = field(default_factory=dict)  # a scorer's, at its best epoch
    finished: bool = False
    first_score: float | None = None  # the first epoch's validation score
    moved: bool = False  # a later epoch scored differently from the first

    def record(self, epoch: int, score: float) -> bool:
        """Note an epoch's validation score; True when it is the best so far."""
        self.epoch = epoch
        if self.first_score is None:
            self.first_score = score
        self.moved = self.moved or score != self.first_score
        if score > self.best_score:
            self.best_score, self.best_epoch, self.bad_epochs = score, epoch, 0
            return True
        # A flat start (every epoch so far scoring as the first: a small-data model still predicting the majority
        # score, QWK 0) is not a model that stopped improving: patience counts from the first change.
        if self.moved:
            self.bad_epochs += 1
        return False

    def should_stop(self, patience: int) -> bool:
        """Early stopping: `patience` epochs in a row without a better validation score, after the score has
        first moved off its first epoch's value."""
        return self.bad_epochs >= patience


def torch_trainer(loop: Callable[[dict[str, Any]], None], loop_config: dict[str, Any], scaling: ScalingConfig,
                  name: str, storage_path: str | Path, keep_checkpoints: int = 2) -> Any:
    """A Ray Train `TorchTrainer` running `loop` on `scaling`'s workers (gloo on CPU, NCCL on GPU), restarting
    failed workers from the last reported checkpoint up to `scaling.max_failures` times. `storage_path`: a folder
    or an object store (raykd.storage), where every rank's checkpoint files go."""
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    from raykd.storage import ray_storage

    # Ray Train reads its controller settings from the driver's environment when the run starts and passes them
    # on to the controller and workers; there is no argument for it.
    os.environ[POLL_ENV] = f"{scaling.report_poll_s:g}"
    return TorchTrainer(
        loop, train_loop_config=loop_config,
        torch_config=TorchConfig(backend="nccl" if scaling.use_gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(
            num_workers=scaling.num_workers, use_gpu=scaling.use_gpu,
            resources_per_worker={"CPU": scaling.cpus_per_worker, **scaling.resources_per_worker,
                                  **({"GPU": scaling.gpus_per_worker} if scaling.use_gpu else {})}),
        run_config=ray.train.RunConfig(
            name=name, **ray_storage(storage_path),
            failure_config=ray.train.FailureConfig(max_failures=scaling.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=keep_checkpoints)))


def count_parameters(model: Any) -> tuple[int, int]:
    """(all, trainable) parameter counts of a torch module; ZeRO-3-partitioned parameters count at full size."""
    params = list(model.parameters())
    total = sum(getattr(p, "ds_numel", p.numel()) for p in params)
    return total, sum(getattr(p, "ds_numel", p.numel()) for p in params if p.requires_grad)
