"""The teacher job: data -> distributed fine-tune -> soft labels, with one MLflow run for the fit."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from raykd.config import TeacherJobConfig
from raykd.data import ScoringDataset
from raykd.data.prepare import frame_for_split, prepare_dataset
from raykd.errors import ConfigError
from raykd.io import write_text_atomic
from raykd.tasks import TaskLayout, evaluate, primary

SOFT_LABELS = "soft_labels.parquet"


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


def check_tasks(cfg: TeacherJobConfig, ds: ScoringDataset) -> None:
    """Labels the config expects must be exactly the labels the data has."""
    if cfg.tasks is None:
        return
    for name, labels in cfg.tasks.items():
        if name not in ds.tasks:
            raise ConfigError(f"tasks.{name}", f"task not in the data (found {sorted(ds.tasks)})")
        if tuple(str(x) for x in labels) != ds.tasks[name].labels:
            raise ConfigError(f"tasks.{name}", f"labels {labels} do not match the data's {list(ds.tasks[name].labels)}")


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


def run_teacher(cfg: TeacherJobConfig, tracking_uri: str | None = None) -> TeacherResult:
    import mlflow
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    from raykd.runtime import ensure_ray
    from raykd.scoring import prob_columns
    from raykd.teacher.export import export_soft_labels
    from raykd.teacher.train import copy_best, read_state, train_loop_per_worker
    from raykd.tracking import default_tracking_uri, flatten, git_commit, log_dataset_input, setup_experiment

    out = Path(cfg.output_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    ds = prepare_dataset(cfg.data)
    check_tasks(cfg, ds)
    layout = TaskLayout.of(ds.tasks)
    train_df, val_df = frame_for_split(ds, "train"), frame_for_split(ds, "validation")
    if train_df.empty or val_df.empty:
        raise ConfigError("data", "the teacher needs labelled train and validation rows")
    digest = ds.digest()
    print(f"[teacher] data {cfg.data.path}: {len(train_df)} train / {len(val_df)} validation / "
          f"{(ds.frame['split'] == 'test').sum()} test / {(ds.frame['split'] == 'unlabelled').sum()} unlabelled; "
          f"tasks {layout.names}; digest {digest[:16]}", flush=True)

    # An unknown backbone or tiny shape fails here, before any worker starts.
    from raykd.teacher.model import resolve_model_path, tiny_config

    if cfg.model.tiny:
        tiny_config(cfg.model.tiny, 128, 0, 1, cfg.model.tiny_layers, cfg.model.tiny_hidden, cfg.model.tiny_overrides)
    else:
        resolve_model_path(cfg.model.name_or_path)
    ensure_ray()
    check_resources(cfg)
    tracking_uri = tracking_uri or cfg.tracking.tracking_uri or default_tracking_uri()
    experiment_id = setup_experiment(tracking_uri, cfg.tracking.experiment)
    run_name = cfg.tracking.run_name or f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        mlflow.set_tags({"raykd.stage": "teacher", "raykd.data_digest": digest, "raykd.git_commit": git_commit(),
                         "raykd.backbone": cfg.model.tiny or cfg.model.name_or_path})
        mlflow.log_params({k: v for k, v in flatten(asdict(cfg)).items() if not k.startswith("chaos")})
        log_dataset_input(ds.frame, name=Path(cfg.data.path).name, digest=digest, source=str(cfg.data.path))

        chaos_marker = str(out / ".chaos_fired") if cfg.chaos else None
        s = cfg.scaling
        resources = {"CPU": s.cpus_per_worker, **({"GPU": s.gpus_per_worker} if s.use_gpu else {})}
        trainer = TorchTrainer(
            train_loop_per_worker,
            train_loop_config={"cfg": asdict(cfg), "tasks": layout.to_list(), "train": train_df,
                               "validation": val_df, "tracking_uri": tracking_uri,
                               "mlflow_run_id": run.info.run_id, "chaos_marker": chaos_marker},
            torch_config=TorchConfig(backend="nccl" if s.use_gpu else "gloo"),
            scaling_config=ray.train.ScalingConfig(num_workers=s.num_workers, use_gpu=s.use_gpu,
                                                   resources_per_worker=resources),
            run_config=ray.train.RunConfig(
                name=run_name, storage_path=str(out / "ray_results"),
                failure_config=ray.train.FailureConfig(max_failures=s.max_failures),
                checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            ),
        )
        t0 = time.time()
        result = trainer.fit()
        fit_s = time.time() - t0
        if result.checkpoint is None:
            raise RuntimeError(f"teacher training produced no checkpoint: {result.error}")
        with result.checkpoint.as_directory() as d:
            model_dir = copy_best(d, out / "model")
            state = read_state(d)
        manifest = json.loads((model_dir / "raykd_model.json").read_text())
        print(f"[teacher] trained {len(state['history'])} epoch(s) in {fit_s:.0f}s; best epoch "
              f"{state['best_epoch'] + 1} val score {state['best_score']:.4f}", flush=True)

        last = state["history"][-1]  # the final epoch's rates (and peak GPU memory)
        rates = {k.replace("/", "_"): float(last[k]) for k in ("train/samples_per_s", "train/steady_samples_per_s",
                                                              "gpu/max_memory_gb") if k in last}
        metrics: dict[str, float] = {"fit_seconds": fit_s, **rates}
        soft_path, soft_digest = "", ""
        if cfg.export.enabled:  # off for throughput runs: train only
            export_frame = ds.frame[ds.frame["split"].isin(cfg.export.splits)]
            t0 = time.time()
            soft = export_soft_labels(model_dir, export_frame, out / SOFT_LABELS, batch_size=cfg.export.batch_size,
                                      num_cpus=cfg.export.num_cpus, num_gpus=cfg.export.num_gpus,
                                      concurrency=cfg.export.concurrency,
                                      metadata={"teacher_run_id": run.info.run_id, "data_digest": digest})
            export_s = time.time() - t0
            metrics.update(score_splits(soft, ds, layout, manifest.get("thresholds", {})))
            metrics.update({"export_seconds": export_s, "export_responses_per_s": len(soft) / max(export_s, 1e-9)})
            soft_path, soft_digest = str(out / SOFT_LABELS), file_digest(out / SOFT_LABELS)
            mlflow.set_tags({"raykd.soft_labels_digest": soft_digest,
                             "raykd.soft_labels_artifact": f"{run.info.artifact_uri}/soft_labels/{SOFT_LABELS}"})
            mlflow.log_artifact(soft_path, artifact_path="soft_labels")
            mlflow.log_artifacts(str(model_dir), artifact_path="model")
        mlflow.log_metrics({k.replace("/", "."): v for k, v in metrics.items() if np.isfinite(v)})
        res = TeacherResult(output_dir=str(out), model_dir=str(model_dir), soft_labels=soft_path,
                            run_id=run.info.run_id, tracking_uri=tracking_uri, data_digest=digest,
                            soft_labels_digest=soft_digest, metrics=metrics,
                            parameters=manifest.get("parameters", {}), epochs_run=len(state["history"]))
        write_text_atomic(out / "teacher_result.json", json.dumps(asdict(res), indent=2))
        mlflow.log_artifact(str(out / "teacher_result.json"))
    if soft_path:
        print_summary(res, layout, prob_columns(layout))
    return res


def score_splits(soft: Any, ds: ScoringDataset, layout: TaskLayout,
                 thresholds: dict[str, list[float]]) -> dict[str, float]:
    """Teacher metrics per split and task from the exported probabilities (`{split}/{task}/{metric}`)."""
    gold = ds.frame.set_index("id")["y"]
    out: dict[str, float] = {}
    for split in ("validation", "test"):
        rows = soft[soft["split"] == split]
        primaries = []
        for task in layout.names:
            part = rows[rows["task"] == task]
            if part.empty:
                continue
            spec = layout.spec(task)
            probs = part[[f"p_{lab}" for lab in spec.labels]].to_numpy()
            y = np.asarray(gold.loc[part["id"]].tolist())
            scores = evaluate(probs, y, spec, thresholds.get(task))
            out.update({f"{split}/{task}/{k}": v for k, v in scores.items()})
            primaries.append(scores[primary(spec)])
        if primaries:
            out[f"{split}/score"] = float(np.mean(primaries))
    return out


def file_digest(path: str | Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def print_summary(res: TeacherResult, layout: TaskLayout, columns: list[str]) -> None:
    print("[teacher] held-back metrics:")
    for split in ("validation", "test"):
        for task in layout.names:
            key = f"{split}/{task}/"
            scores = {k[len(key):]: v for k, v in res.metrics.items() if k.startswith(key)}
            if scores:
                shown = " ".join(f"{k}={v:.4f}" for k, v in scores.items() if not k.startswith("f1_"))
                print(f"[teacher]   {split:10s} {task:16s} {shown}")
    print(f"[teacher] soft labels: {res.soft_labels} ({', '.join(columns)})")
    print(f"[teacher] model: {res.model_dir}; MLflow run {res.run_id} at {res.tracking_uri}", flush=True)
