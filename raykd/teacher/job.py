"""The teacher stage: data -> distributed fine-tune -> soft labels, in one MLflow run.

    prepare   read and split the data once; record it (raykd.data.preparation) for the stages after this one
    fit       Ray Train TorchTrainer with DeepSpeed ZeRO (raykd.teacher.train), the best epoch's artifact
    export    soft labels for every response on Ray Data (raykd.teacher.export), scored per split
    result    TeacherResult in teacher_result.json; `TeacherOutput.load(folder)` is how later stages read it
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from raykd.data import ScoringDataset
from raykd.errors import ConfigError
from raykd.evaluation import TaskScores
from raykd.heads import TaskLayout
from raykd.pipeline import Lineage, StageRun, load_result, resolve_tracking_uri, say
from raykd.stack.job import StackSummary
from raykd.teacher.config import TeacherJobConfig
from raykd.teacher.train import KillPoint

SOFT_LABELS = "soft_labels.parquet"
RESULT = "teacher_result.json"


@dataclass
class TeacherResult:
    output_dir: str
    model_dir: str
    soft_labels: str
    run_id: str | None
    tracking_uri: str
    data_digest: str
    soft_labels_digest: str
    metrics: dict[str, float]
    parameters: dict[str, int]
    epochs_run: int
    backbone: str = ""
    splits: dict[str, TaskScores] = field(default_factory=dict)  # the teacher on validation and test
    members: list[str] = field(default_factory=list)  # an ensemble's member teacher runs (raykd.teacher.ensemble)
    weights: dict[str, list[float]] = field(default_factory=dict)  # an ensemble's weights per task
    stack: StackSummary | None = None  # a stacked teacher's learners, selection and scores (raykd.stack)


@dataclass
class TeacherOutput:
    """A finished teacher stage as later stages see it: its result, model and soft labels, checked to exist."""

    folder: Path  # local: the stage's folder, or this node's copy of it from an object store
    result: TeacherResult
    location: str = ""  # where the stage keeps it (raykd.storage): the folder's path, or its URI

    @property
    def model_location(self) -> str:
        """The model folder where a Ray worker on any node can read it (raykd.storage.localize)."""
        from raykd import storage

        return storage.join(self.location or self.folder, "model")

    @property
    def model_dir(self) -> Path:
        return self.folder / "model"

    @property
    def soft_labels(self) -> Path:
        return self.folder / SOFT_LABELS

    @property
    def prepared(self) -> Any:
        """The teacher's record of the data it prepared (raykd.data.preparation)."""
        from raykd.data.preparation import load_record

        return load_record(self.folder)

    @property
    def soft_labels_uri(self) -> str:
        return f"runs:/{self.result.run_id}/soft_labels/{SOFT_LABELS}" if self.result.run_id else ""

    @classmethod
    def load(cls, location: str | Path, key: str = "teacher") -> TeacherOutput:
        """A finished teacher stage at `location`, a folder or an object store (fetched into this node's
        cache)."""
        from raykd import storage

        location = storage.normalise(location)
        if storage.is_remote(location) and not storage.exists(storage.join(location, RESULT)):
            raise ConfigError(key, f"{location} is not a finished teacher stage's output (missing {RESULT})")
        folder = storage.localize(location).resolve()
        missing = [name for name in (RESULT, SOFT_LABELS, "model") if not (folder / name).exists()]
        if missing:
            raise ConfigError(key, f"{location} is not a finished teacher stage's output (missing "
                                   f"{', '.join(missing)})")
        return cls(folder, load_result(TeacherResult, folder / RESULT), location)

    def lineage(self, data_digest: str) -> Lineage:
        from raykd.tracking import git_commit

        return Lineage(data_digest=data_digest, git_commit=git_commit(), teacher_run_id=self.result.run_id or "",
                       soft_labels_digest=self.result.soft_labels_digest, soft_labels_artifact=self.soft_labels_uri)


def check_tasks(cfg: TeacherJobConfig, ds: ScoringDataset) -> None:
    """Labels the config expects must be exactly the labels the data has."""
    for name, labels in (cfg.tasks or {}).items():
        if name not in ds.tasks:
            raise ConfigError(f"tasks.{name}", f"task not in the data (found {sorted(ds.tasks)})")
        if tuple(str(x) for x in labels) != ds.tasks[name].labels:
            raise ConfigError(f"tasks.{name}", f"labels {labels} do not match the data's {list(ds.tasks[name].labels)}")


def check_backbone(cfg: TeacherJobConfig) -> None:
    """An unknown backbone or tiny shape fails here, before any worker starts."""
    from raykd.teacher.model import resolve_model_path, tiny_config

    m = cfg.model
    if m.tiny:
        tiny_config(m.tiny, 128, 0, 1, m.tiny_layers, m.tiny_hidden, m.tiny_overrides)
    else:
        resolve_model_path(m.name_or_path)


def check_resources(cfg: TeacherJobConfig) -> None:
    """Fail fast, with the numbers, when the cluster cannot hold the requested workers."""
    import ray

    res = ray.cluster_resources()
    cpus, gpus = res.get("CPU", 0.0), res.get("GPU", 0.0)
    s = cfg.scaling
    need_cpu = s.num_workers * s.cpus_per_worker
    if need_cpu > cpus:
        raise ConfigError("scaling.num_workers",
                          f"{s.num_workers} workers x {s.cpus_per_worker} CPU need {need_cpu:g} CPUs; "
                          f"the cluster has {cpus:g}")
    if s.use_gpu and s.num_workers * s.gpus_per_worker > gpus:
        raise ConfigError("scaling.num_workers",
                          f"{s.num_workers} workers x {s.gpus_per_worker} GPU need "
                          f"{s.num_workers * s.gpus_per_worker:g} GPUs; the cluster has {gpus:g}")


def fit(cfg: TeacherJobConfig, ds: ScoringDataset, layout: TaskLayout, run: StageRun,
        kill_worker: KillPoint | None) -> tuple[Path, Any, float]:
    """Train on Ray Train; returns the best model's folder (copied out of the final checkpoint), the final
    training state and the fit's seconds."""
    from raykd import storage
    from raykd.teacher.train import copy_best, read_state, train_loop_per_worker
    from raykd.training import torch_trainer

    frames = {s: ds.frame[ds.frame["split"] == s].reset_index(drop=True) for s in ("train", "validation")}
    trainer = torch_trainer(train_loop_per_worker, {
        "cfg": asdict(cfg), "tasks": layout.to_list(), "train": frames["train"], "validation": frames["validation"],
        "tracking_uri": run.tracking_uri, "mlflow_run_id": run.run_id,
        "kill": asdict(kill_worker) if kill_worker else None,
        # where every worker can see it, on any node: the stage's storage
        "kill_marker": storage.join(run.location, ".worker_killed") if kill_worker else None},
        cfg.scaling, run.run.info.run_name, storage.join(run.location, "ray_results"))
    t0 = time.time()
    result = trainer.fit()
    seconds = time.time() - t0
    if result.checkpoint is None:
        raise RuntimeError(f"teacher training produced no checkpoint: {result.error}")
    with result.checkpoint.as_directory() as d:
        return copy_best(d, run.out / "model"), read_state(d), seconds


def export(cfg: TeacherJobConfig, ds: ScoringDataset, digest: str, model_dir: Path, run: StageRun
           ) -> tuple[str, str, dict[str, TaskScores], dict[str, float]]:
    """Soft labels for every response of the exported splits, written atomically and logged; returns their
    path, sha256, the teacher's scores per split, and the export's rate."""
    from raykd import storage
    from raykd.teacher.export import export_soft_labels

    path = run.out / SOFT_LABELS
    # The exporting actors may run on any node: they read the model from the stage's storage.
    location = run.locate(model_dir)
    storage.publish(model_dir, location)
    t0 = time.time()
    soft = export_soft_labels(model_dir, ds.frame[ds.frame["split"].isin(cfg.export.splits)], path,
                              batch_size=cfg.export.batch_size, num_cpus=cfg.export.num_cpus,
                              num_gpus=cfg.export.num_gpus, concurrency=cfg.export.concurrency,
                              metadata={"teacher_run_id": run.run_id, "data_digest": digest},
                              model_location=location)
    seconds = time.time() - t0
    digest, splits = record_soft_labels(soft, ds, model_dir, run)
    return str(path), digest, splits, {"export_seconds": seconds, "export_responses_per_s": len(soft) / seconds}


def record_soft_labels(soft: Any, ds: ScoringDataset, model_dir: Path, run: StageRun
                       ) -> tuple[str, dict[str, TaskScores]]:
    """Score the teacher's soft labels on validation and test (with its own decision thresholds), tag their
    digest and log them with the model; returns the digest and the scores."""
    import mlflow

    from raykd.io import file_digest
    from raykd.teacher.artifact import TeacherScorer
    from raykd.teacher.export import soft_label_scores

    thresholds = TeacherScorer.read_thresholds(model_dir)
    splits = {split: soft_label_scores(soft, ds, split, thresholds) for split in ("validation", "test")}
    digest = file_digest(run.out / SOFT_LABELS)
    mlflow.set_tags({"raykd.soft_labels_digest": digest,
                     "raykd.soft_labels_artifact": f"{run.run.info.artifact_uri}/soft_labels/{SOFT_LABELS}"})
    mlflow.log_artifact(str(run.out / SOFT_LABELS), artifact_path="soft_labels")
    mlflow.log_artifacts(str(model_dir), artifact_path="model")
    return digest, splits


@dataclass
class Trained:
    """What the teacher's fit left: its model folder, soft labels and their scores, metrics, epochs."""

    model_dir: Path
    soft_path: str = ""
    soft_digest: str = ""
    splits: dict[str, TaskScores] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    epochs: int = 0
    stack: StackSummary | None = None


def train_and_export(cfg: TeacherJobConfig, ds: ScoringDataset, digest: str, layout: TaskLayout, run: StageRun,
                     prepared: Any, kill_worker: KillPoint | None) -> Trained:
    """A fine-tuned teacher (encoder or LLM): Ray Train + DeepSpeed, then soft labels on Ray Data."""
    from raykd.data.preparation import write_model_data

    model_dir, state, seconds = fit(cfg, ds, layout, run, kill_worker)
    write_model_data(model_dir, prepared)
    run.say(f"trained {len(state.history)} epoch(s) in {seconds:.0f}s; best epoch {state.best_epoch + 1} val "
            f"score {state.best_score:.4f}")
    last = state.history[-1]  # the final epoch's rates (and peak GPU memory)
    out = Trained(model_dir, epochs=len(state.history), metrics={"fit_seconds": seconds, **{
        k.replace("/", "_"): float(last[k]) for k in ("train/samples_per_s", "train/steady_samples_per_s",
                                                     "gpu/max_memory_gb") if k in last}})
    if cfg.export.enabled:  # off for throughput runs: train only
        out.soft_path, out.soft_digest, out.splits, rates = export(cfg, ds, digest, model_dir, run)
        out.metrics.update(rates)
    return out


def stack_and_export(cfg: TeacherJobConfig, ds: ScoringDataset, layout: TaskLayout, run: StageRun,
                     prepared: Any, lineage: Lineage) -> Trained:
    """A stacked teacher (raykd.stack): its soft labels come out of its cross-fitting."""
    import pandas as pd

    from raykd.data.preparation import write_model_data
    from raykd.stack.job import INSAMPLE, fit_stack, stack_note

    t0 = time.time()
    model_dir, summary, metrics = fit_stack(cfg, ds, layout, run, lineage)
    write_model_data(model_dir, prepared)
    stack_note(summary)
    soft = pd.read_parquet(run.out / SOFT_LABELS)
    digest, splits = record_soft_labels(soft, ds, model_dir, run)
    run.log_artifact(run.out / INSAMPLE, "soft_labels")
    metrics.update({"fit_seconds": time.time() - t0, "stack_cv_score": summary.cv_score})
    return Trained(model_dir, str(run.out / SOFT_LABELS), digest, splits, metrics, 0, summary)


def run_teacher(cfg: TeacherJobConfig, tracking_uri: str | None = None, *,
                kill_worker: KillPoint | None = None) -> TeacherResult:
    """The teacher stage. `kill_worker` is for tests: it SIGKILLs one worker once, as a crashed node would."""
    from raykd.data.preparation import prepare_dataset, record
    from raykd.runtime import ensure_ray
    from raykd.teacher.artifact import TeacherScorer
    from raykd.tracking import git_commit

    ds = prepare_dataset(cfg.data)
    digest = ds.digest()
    check_tasks(cfg, ds)
    layout = TaskLayout.of(ds.tasks)
    counts = ds.frame["split"].value_counts()
    if not counts.get("train") or not counts.get("validation"):
        raise ConfigError("data", "the teacher needs labelled train and validation rows")
    say("teacher", f"data {cfg.data.path}: {counts.get('train', 0)} train / {counts.get('validation', 0)} validation / "
                   f"{counts.get('test', 0)} test / {counts.get('unlabelled', 0)} unlabelled; tasks {layout.names}; "
                   f"digest {digest[:16]}")
    stacked = cfg.model.kind == "stack"
    if not stacked:
        check_backbone(cfg)
    ensure_ray()
    if not stacked:
        check_resources(cfg)
    backbone = "stack" if stacked else cfg.model.tiny or cfg.model.name_or_path
    lineage = Lineage(data_digest=digest, git_commit=git_commit())
    with StageRun.open("teacher", cfg.name, cfg.output_dir, cfg.tracking,
                       resolve_tracking_uri(tracking_uri, cfg.tracking), lineage, params=asdict(cfg), dataset=ds,
                       data_source=cfg.data.path, tags={"raykd.backbone": backbone}) as run:
        prepared = record(ds, cfg.data, run.out, "teacher", digest)
        out = stack_and_export(cfg, ds, layout, run, prepared, lineage) if stacked else \
            train_and_export(cfg, ds, digest, layout, run, prepared, kill_worker)
        for split, scores in out.splits.items():
            out.metrics.update(scores.flat(f"{split}/"))
        run.log_metrics(out.metrics)
        result = TeacherResult(output_dir=run.location, model_dir=run.locate(out.model_dir),
                               soft_labels=run.locate(out.soft_path) if out.soft_path else "",
                               run_id=run.run_id, tracking_uri=run.tracking_uri, data_digest=digest,
                               soft_labels_digest=out.soft_digest, metrics=out.metrics,
                               parameters=TeacherScorer.read_manifest(out.model_dir).get("parameters", {}),
                               epochs_run=out.epochs, backbone=backbone, splits=out.splits, stack=out.stack)
        run.save(result, RESULT)
    if out.soft_path:
        print_summary(result)
    return result


def print_summary(res: TeacherResult) -> None:
    say("teacher", "held-back metrics:")
    for split, scores in res.splits.items():
        for task, m in scores.tasks.items():
            shown = " ".join(f"{k}={v:.4f}" for k, v in m.items() if not k.startswith("f1_"))
            say("teacher", f"  {split:10s} {task:16s} {shown}")
    say("teacher", f"soft labels: {res.soft_labels}")
    say("teacher", f"model: {res.model_dir}; MLflow run {res.run_id} at {res.tracking_uri}")
