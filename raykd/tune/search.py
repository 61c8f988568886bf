"""Ray Tune over student hyperparameters, the champion, and its MLflow lineage.

Each trial is a Tune function that fits one student (raykd.distill.train.fit_student) and reports the
validation metric every epoch, so ASHA can stop weak trials early; the trial's final report carries the
trained student as a checkpoint. Students are single-process, so training runs directly inside the Tune
function (the Train V2 pattern: a Trainer is launched inside the function, never passed to the Tuner).
After the search, the winner is the best validation score among trials within the size (and optional
speed) constraint; only the winner is evaluated on test, registered in MLflow and aliased `champion`.
Re-running the same command after an interruption restores the experiment (`Tuner.restore`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raykd.config import DistillConfig, ParamRange, StudentConfig, TuneJobConfig, from_dict
from raykd.errors import ConfigError, RaykdError
from raykd.io import copy_dir_atomic, write_text_atomic
from raykd.tasks import TaskLayout

STATE = "tune_state.json"
METRIC = "val_score"


def search_space(space: dict[str, ParamRange]) -> dict[str, Any]:
    from ray import tune

    out: dict[str, Any] = {}
    for key, r in space.items():
        if r.type == "uniform":
            out[key] = tune.uniform(r.low, r.high)
        elif r.type == "loguniform":
            out[key] = tune.loguniform(r.low, r.high)
        elif r.type == "randint":
            out[key] = tune.randint(int(r.low), int(r.high) + 1)
        else:
            out[key] = tune.choice(list(r.values or []))
    return out


def trial_configs(cfg: TuneJobConfig, params: dict[str, Any]) -> tuple[StudentConfig, DistillConfig]:
    student = dataclasses.asdict(cfg.student)
    distill = dataclasses.asdict(cfg.distill)
    for key, value in params.items():
        section, name = key.split(".", 1)
        target = student if section == "student" else distill
        target[name] = value.item() if isinstance(value, np.generic) else value
    return from_dict(StudentConfig, student, "student"), from_dict(DistillConfig, distill, "distill")


def trial(params: dict[str, Any], cfg_dict: dict[str, Any], frame: pd.DataFrame, tasks: list[dict],
          teacher_tokenizer: str) -> None:
    """One Tune trial: fit a student with `params`, report per epoch, checkpoint the final student."""
    from ray import tune

    from raykd.distill.train import fit_student, save_fit

    cfg = from_dict(TuneJobConfig, cfg_dict)
    scfg, dcfg = trial_configs(cfg, params)
    layout = TaskLayout.from_list(tasks)
    dcfg = dataclasses.replace(dcfg, threads=1)
    train = frame[frame["split"].isin(["train", "unlabelled"])]
    val = frame[frame["split"] == "validation"]
    holder: dict[str, Any] = {}

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        if epoch < dcfg.epochs:  # the last epoch reports with the checkpoint below
            tune.report({METRIC: metrics["val_score"], "epoch": epoch, "train_loss": metrics["train_loss"],
                         "parameters": metrics["parameters"]})
        holder["last"] = metrics

    fit = fit_student(scfg, dcfg, train, val, layout, teacher_tokenizer, on_epoch=on_epoch)
    with tempfile.TemporaryDirectory(prefix="raykd-trial-") as tmp:
        save_fit(fit, Path(tmp) / "student", extra={"kd_weight": dcfg.kd_weight})
        last = holder.get("last", {})
        tune.report({METRIC: fit.val_score, "epoch": fit.epochs_run, "train_loss": last.get("train_loss", math.nan),
                     "best_epoch": fit.best_epoch, "parameters": fit.parameters, "final": True},
                    checkpoint=tune.Checkpoint.from_directory(tmp))


def run_tune(cfg: TuneJobConfig, tracking_uri: str | None = None) -> dict[str, Any]:
    import mlflow
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from raykd.data.prepare import prepare_dataset
    from raykd.distill.job import throughput
    from raykd.distill.softlabels import attach_soft_labels
    from raykd.runtime import ensure_ray
    from raykd.scoring import load_scorer
    from raykd.tracking import default_tracking_uri, flatten, git_commit, log_dataset_input, setup_experiment

    out = Path(cfg.output_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    teacher_dir = Path(cfg.teacher).expanduser().resolve()
    if not (teacher_dir / "soft_labels.parquet").is_file():
        raise ConfigError("teacher", f"{teacher_dir} is not a teacher job's output (soft_labels.parquet missing)")
    teacher_info = json.loads((teacher_dir / "teacher_result.json").read_text())
    ds = prepare_dataset(cfg.data)
    frame = attach_soft_labels(ds, teacher_dir / "soft_labels.parquet", require_all=False)
    frame = frame[frame["y"].notna() | frame["soft"].notna()]
    layout = TaskLayout.of(ds.tasks)
    teacher = load_scorer(str(teacher_dir / "model"))
    teacher_params = teacher.num_parameters
    max_params = cfg.max_param_ratio * teacher_params

    ensure_ray()
    tracking_uri = tracking_uri or cfg.tracking.tracking_uri or teacher_info.get("tracking_uri") \
        or default_tracking_uri()
    experiment_id = setup_experiment(tracking_uri, cfg.tracking.experiment)
    storage = out / "ray_tune"
    exp_path = storage / cfg.name
    state_path = out / STATE
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    trainable = tune.with_resources(
        tune.with_parameters(trial, cfg_dict=dataclasses.asdict(cfg), frame=frame, tasks=layout.to_list(),
                             teacher_tokenizer=str(teacher_dir / "model" / "tokenizer")),
        {"cpu": cfg.cpus_per_trial})
    resumed = tune.Tuner.can_restore(str(exp_path)) and bool(state.get("parent_run_id"))
    lineage = {"raykd.teacher_run_id": teacher_info.get("run_id") or "",
               "raykd.soft_labels_digest": teacher_info.get("soft_labels_digest", ""),
               "raykd.soft_labels_artifact": _soft_labels_uri(teacher_info),
               "raykd.data_digest": ds.digest(), "raykd.git_commit": git_commit()}
    if resumed:
        print(f"[tune] resuming the interrupted search at {exp_path}", flush=True)
        tuner = tune.Tuner.restore(str(exp_path), trainable=trainable, resume_unfinished=True, resume_errored=True)
        parent_id = state["parent_run_id"]
    else:
        if exp_path.exists():
            shutil.rmtree(exp_path)  # an earlier search that never got far enough to restore
        with mlflow.start_run(experiment_id=experiment_id, run_name=cfg.tracking.run_name or cfg.name,
                              tags={**lineage, "raykd.stage": "tune"}) as parent:
            mlflow.log_params({**flatten({k: v for k, v in dataclasses.asdict(cfg).items()
                                          if k in ("student", "distill")}),
                               "num_samples": cfg.num_samples, "search_alg": cfg.search_alg,
                               "space": json.dumps({k: dataclasses.asdict(v) for k, v in cfg.space.items()})})
            log_dataset_input(ds.frame, name=Path(cfg.data.path).name, digest=ds.digest(), source=str(cfg.data.path))
            parent_id = parent.info.run_id
        write_text_atomic(state_path, json.dumps({"parent_run_id": parent_id, "started": time.time()}))
        tuner = tune.Tuner(
            trainable,
            param_space=search_space(cfg.space),
            tune_config=tune.TuneConfig(
                metric=METRIC, mode="max", num_samples=cfg.num_samples, search_alg=build_searcher(cfg),
                scheduler=ASHAScheduler(time_attr="training_iteration", max_t=cfg.distill.epochs,
                                        grace_period=cfg.asha.grace_period,
                                        reduction_factor=cfg.asha.reduction_factor),
                time_budget_s=cfg.time_budget_s),
            # One checkpoint per trial (its final student); with num_to_keep set, Tune snapshots the
            # experiment state as each trial checkpoints, so a killed search never re-runs a finished trial.
            run_config=tune.RunConfig(name=cfg.name, storage_path=str(storage), verbose=1,
                                      checkpoint_config=tune.CheckpointConfig(num_to_keep=1)),
        )
    t0 = time.time()
    grid = tuner.fit()
    search_s = time.time() - t0
    trials = _collect(grid)
    if not trials:
        raise RaykdError("no trial finished; see the Ray Tune logs under " + str(exp_path))
    eligible = [t for t in trials if t["complete"] and t["parameters"] <= max_params]
    if not eligible:
        raise RaykdError(f"no finished trial fits the size constraint (<= {max_params:,.0f} parameters)")
    winner = max(eligible, key=lambda t: t[METRIC])

    champion_dir = out / "champion"
    with winner["checkpoint"].as_directory() as d:
        copy_dir_atomic(Path(d) / "student", champion_dir)

    test = _test_winner(champion_dir, frame[frame["split"] == "test"], layout)
    bench = frame[frame["split"].isin(["validation", "test"])].head(256)
    from raykd.scoring import load_scorer as _load

    speed = throughput(_load(str(champion_dir)), bench["text"].tolist(), bench["task"].tolist(), 64, repeats=3)
    teacher_speed = throughput(teacher, bench["text"].tolist(), bench["task"].tolist(), 64)
    if cfg.min_speedup and speed / teacher_speed < cfg.min_speedup:
        print(f"[tune] warning: the winner is {speed / teacher_speed:.1f}x faster than the teacher, "
              f"below min_speedup {cfg.min_speedup}", flush=True)
    early = sum(1 for t in trials if not t["complete"])
    summary = {"trials": len(trials), "stopped_early": early, "search_seconds": search_s,
               "winner": {k: v for k, v in winner.items() if k != "checkpoint"}, "test": test,
               "teacher_parameters": teacher_params, "speedup": speed / teacher_speed,
               "parent_run_id": parent_id, "tracking_uri": tracking_uri, "champion_dir": str(champion_dir)}
    plot_path = out / "search.png"
    plot_search(trials, winner, teacher_info, layout, plot_path)

    with mlflow.start_run(run_id=parent_id):
        champion_run, champion_uri = _log_trials(trials, winner, cfg.student.arch, experiment_id, parent_id,
                                                 lineage, champion_dir, test, speed, teacher_speed)
        mlflow.log_metrics({"trials": len(trials), "stopped_early": early, "search_seconds": search_s,
                            "winner.val_score": winner[METRIC], "winner.test_score": test["score"],
                            "winner.parameters": winner["parameters"], "winner.speedup": speed / teacher_speed})
        mlflow.log_artifact(str(plot_path))
        summary["champion_run_id"] = champion_run
        if cfg.register_as:
            from raykd.registry import register_champion

            version = register_champion(champion_uri, cfg.register_as,
                                        {**lineage, "raykd.tune_run_id": parent_id})
            summary["registered"] = {"name": cfg.register_as, "version": version.version, "alias": "champion"}
        write_text_atomic(out / "tune_result.json", json.dumps(summary, indent=2, default=str))
        mlflow.log_artifact(str(out / "tune_result.json"))
    state_path.unlink(missing_ok=True)  # finished: the next run starts a new search
    print_summary(summary, trials)
    return summary


def _soft_labels_uri(info: dict[str, Any]) -> str:
    return f"runs:/{info['run_id']}/soft_labels/soft_labels.parquet" if info.get("run_id") else ""


def build_searcher(cfg: TuneJobConfig) -> Any:
    """The search algorithm named by `search_alg`, seeded, running at most `max_concurrent_trials` at once."""
    from ray.tune.search import ConcurrencyLimiter

    if cfg.search_alg == "random":
        from ray.tune.search.basic_variant import BasicVariantGenerator

        # Tune ignores TuneConfig.max_concurrent_trials for a generator passed in, so it is set here.
        return BasicVariantGenerator(random_state=cfg.seed, max_concurrent=cfg.max_concurrent_trials)
    try:
        from ray.tune.search.optuna import OptunaSearch
    except ImportError:
        raise ConfigError("search_alg", "optuna is not installed; use search_alg: random") from None
    return ConcurrencyLimiter(OptunaSearch(seed=cfg.seed), max_concurrent=cfg.max_concurrent_trials)


def _collect(grid: Any) -> list[dict[str, Any]]:
    trials = []
    for r in grid:
        if r.metrics is None or METRIC not in r.metrics:
            continue
        history = r.metrics_dataframe
        trials.append({
            "trial_id": r.metrics.get("trial_id"), "params": {k: _plain(v) for k, v in r.config.items()},
            METRIC: float(r.metrics[METRIC]), "epochs": int(r.metrics.get("epoch", 0)),
            "complete": bool(r.metrics.get("final")) and r.checkpoint is not None,
            "parameters": int(r.metrics.get("parameters", 0)),
            "history": history[[METRIC, "epoch"]].to_dict("records") if history is not None else [],
            "checkpoint": r.checkpoint, "error": str(r.error) if r.error else None,
        })
    return trials


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _test_winner(model_dir: Path, test: pd.DataFrame, layout: TaskLayout) -> dict[str, Any]:
    from raykd.distill.train import evaluate_frame
    from raykd.students.artifact import StudentScorer

    metrics, score = evaluate_frame(StudentScorer(model_dir), test)
    return {"score": score, **metrics}


def _log_trials(trials: list[dict[str, Any]], winner: dict[str, Any], arch: str, experiment_id: str,
                parent_id: str, lineage: dict[str, str], champion_dir: Path, test: dict[str, Any], speed: float,
                teacher_speed: float) -> tuple[str, str]:
    """A child run per trial (params, per-epoch validation metric); the winner's also holds the model.
    Returns the winner's run id and logged-model URI."""
    import mlflow

    from raykd.registry import log_model

    champion = ("", "")
    for t in trials:
        is_winner = t is winner
        with mlflow.start_run(experiment_id=experiment_id, nested=True, run_name=f"trial-{t['trial_id']}",
                              tags={**lineage, "raykd.stage": "student", "mlflow.parentRunId": parent_id,
                                    "raykd.tune_run_id": parent_id, "raykd.trial_complete": str(t["complete"]),
                                    **({"raykd.champion": "true"} if is_winner else {})}) as run:
            mlflow.log_params({"student.arch": arch, **t["params"]})
            for i, h in enumerate(t["history"], start=1):
                mlflow.log_metric("val.score", float(h[METRIC]), step=int(h.get("epoch") or i))
            mlflow.log_metrics({"parameters": t["parameters"], "epochs": t["epochs"]})
            if is_winner:
                mlflow.log_metrics({"val.score": t[METRIC], "test.score": test["score"], "responses_per_s": speed,
                                    "speedup_vs_teacher": speed / teacher_speed,
                                    **{f"test.{k.replace('/', '.')}": v for k, v in test.items() if k != "score"}})
                champion = (run.info.run_id, log_model(champion_dir).model_uri)
    return champion


def plot_search(trials: list[dict[str, Any]], winner: dict[str, Any], teacher_info: dict[str, Any],
                layout: TaskLayout, path: Path) -> None:
    """Validation metric against parameters for every trial; the winner marked; the teacher as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    done = [t for t in trials if t["complete"]]
    stopped = [t for t in trials if not t["complete"]]
    ax.scatter([t["parameters"] for t in done], [t[METRIC] for t in done], label="finished trial", alpha=0.8)
    if stopped:
        ax.scatter([t["parameters"] for t in stopped], [t[METRIC] for t in stopped], marker="x", color="grey",
                   label="stopped early (ASHA)")
    ax.scatter([winner["parameters"]], [winner[METRIC]], s=180, marker="*", color="crimson", label="champion",
               zorder=5)
    teacher_val = _teacher_val(teacher_info, layout)
    if teacher_val is not None:
        ax.axhline(teacher_val, color="black", linestyle="--", label=f"teacher ({teacher_val:.3f})")
    ax.set_xscale("log")
    ax.set_xlabel("student parameters")
    ax.set_ylabel("validation " + ("QWK" if all(t.ordinal for t in layout.tasks) else "macro-F1"))
    ax.set_title(f"Ray Tune search: {len(trials)} trials")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    with tempfile.NamedTemporaryFile(suffix=".png", dir=path.parent, delete=False) as f:
        fig.savefig(f.name, dpi=120)
    Path(f.name).replace(path)
    plt.close(fig)


def _teacher_val(info: dict[str, Any], layout: TaskLayout) -> float | None:
    from raykd.tasks import primary

    vals = [info.get("metrics", {}).get(f"validation/{t.name}/{primary(t)}") for t in layout.tasks]
    vals = [v for v in vals if v is not None]
    return float(np.mean(vals)) if vals else None


def print_summary(summary: dict[str, Any], trials: list[dict[str, Any]]) -> None:
    w = summary["winner"]
    print(f"[tune] {summary['trials']} trials in {summary['search_seconds']:.0f}s; "
          f"{summary['stopped_early']} stopped early by ASHA", flush=True)
    for t in sorted(trials, key=lambda t: -t[METRIC]):
        mark = "*" if t["trial_id"] == w["trial_id"] else " "
        short = ", ".join(f"{k.split('.')[-1]}={v:.3g}" if isinstance(v, float) else f"{k.split('.')[-1]}={v}"
                          for k, v in t["params"].items())
        print(f"[tune] {mark} {t['trial_id']} val {t[METRIC]:.4f} epochs {t['epochs']:2d} "
              f"params {t['parameters']:>8,} {'done' if t['complete'] else 'stopped'}  {short}")
    print(f"[tune] champion: trial {w['trial_id']} val {w[METRIC]:.4f} test {summary['test']['score']:.4f} "
          f"params {w['parameters']:,} ({w['parameters'] / summary['teacher_parameters']:.2%} of the teacher), "
          f"{summary['speedup']:.0f}x faster", flush=True)
    if summary.get("registered"):
        r = summary["registered"]
        print(f"[tune] registered as models:/{r['name']}@champion (version {r['version']})", flush=True)
