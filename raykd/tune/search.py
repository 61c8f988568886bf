"""The Tune stage: a Ray Tune search over student hyperparameters, the champion, and its MLflow lineage.

    reuse     the teacher's prepared data and soft labels (as the distill stage does)
    search    each trial a Tune function fitting one student (raykd.distill.train.fit_student), reporting the
              validation metric every epoch so ASHA can stop weak trials early; its final report carries the
              trained student as a checkpoint. With `folds: k` (k > 1) a trial is scored by k-fold
              cross-validation over the labelled train and validation rows instead (folds stratified by task
              and score, the same for every trial; one report per fold, so ASHA stops weak trials after a
              fold), then refit on all of them for the folds' mean best epoch count: a 150-response
              validation split ranks students by noise, the mean of k folds much less. Students are
              single-process, so training runs inside the Tune function (the Train V2 pattern: a Trainer is
              launched inside a function, never passed to Tuner).
              Re-running the same command after an interruption restores the experiment (`Tuner.restore`).
    choose    the best validation (or CV) score among finished trials within the size limit and, when set, at
              least `min_speedup` times the teacher's CPU throughput; only the winner is evaluated on test.
              The space may search `student.arch` (lstm, moe) and include `distill.kd_weight: 0`, so the
              champion is chosen among families and against the no-KD student
    record    a child run per trial, the champion logged, registered and aliased `champion`, search.png
The result is a `TuneResult` (tune_result.json).
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raykd.config import from_dict
from raykd.distill.config import DistillConfig, StudentConfig
from raykd.distill.handoff import TeacherReference
from raykd.errors import ConfigError, RaykdError
from raykd.io import copy_dir_atomic, write_text_atomic
from raykd.measure import throughput
from raykd.pipeline import Lineage, StageRun, resolve_tracking_uri, say
from raykd.tasks import TaskLayout, TaskScores
from raykd.teacher.job import TeacherOutput
from raykd.tune.config import ParamRange, TuneJobConfig

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
        elif r.type == "grid":
            out[key] = tune.grid_search(list(r.values or []))
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
          teacher_model: str) -> None:
    """One Tune trial: fit a student with `params`, report per epoch, checkpoint the final student."""
    from ray import tune

    from raykd.distill.train import fit_student, save_fit

    cfg = from_dict(TuneJobConfig, cfg_dict)
    scfg, dcfg = trial_configs(cfg, params)
    layout = TaskLayout.from_list(tasks)
    dcfg = dataclasses.replace(dcfg, threads=1)
    if cfg.folds > 1:
        return _cross_validated_trial(cfg, scfg, dcfg, frame, layout, teacher_model)
    train = frame[frame["split"].isin(["train", "unlabelled"])]
    val = frame[frame["split"] == "validation"]
    holder: dict[str, Any] = {}

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        if epoch < dcfg.epochs:  # the last epoch reports with the checkpoint below
            tune.report({METRIC: metrics["val_score"], "epoch": epoch, "train_loss": metrics["train_loss"],
                         "parameters": metrics["parameters"]})
        holder["last"] = metrics

    fit = fit_student(scfg, dcfg, train, val, layout, teacher_model, on_epoch=on_epoch)
    with tempfile.TemporaryDirectory(prefix="raykd-trial-") as tmp:
        save_fit(fit, Path(tmp) / "student", extra={"kd_weight": dcfg.kd_weight})
        last = holder.get("last", {})
        tune.report({METRIC: fit.val_score, "epoch": fit.epochs_run, "train_loss": last.get("train_loss", math.nan),
                     "best_epoch": fit.best_epoch, "parameters": fit.parameters, "final": True},
                    checkpoint=tune.Checkpoint.from_directory(tmp))


def cv_folds(frame: pd.DataFrame, k: int, seed: int) -> np.ndarray:
    """Fold (0..k-1) of each labelled train/validation row, stratified by task and score; -1 for other rows."""
    from sklearn.model_selection import StratifiedKFold

    pool = (frame["split"].isin(["train", "validation"]) & frame["y"].notna()).to_numpy()
    strata = (frame.loc[pool, "task"] + "|" + frame.loc[pool, "y"].astype(str)).to_numpy()
    folds = np.full(len(frame), -1)
    where = np.flatnonzero(pool)
    for i, (_, held) in enumerate(StratifiedKFold(k, shuffle=True, random_state=seed).split(where, strata)):
        folds[where[held]] = i
    return folds


def _cross_validated_trial(cfg: TuneJobConfig, scfg: StudentConfig, dcfg: DistillConfig, frame: pd.DataFrame,
                           layout: TaskLayout, teacher_model: str) -> None:
    from ray import tune

    from raykd.distill.train import fit_student, save_fit

    fold = frame["fold"].to_numpy()
    unlabelled = (frame["split"] == "unlabelled").to_numpy()
    scores, best_epochs = [], []
    for i in range(cfg.folds):
        fit = fit_student(scfg, dcfg, frame[unlabelled | ((fold >= 0) & (fold != i))], frame[fold == i], layout,
                          teacher_model)
        scores.append(fit.val_score)
        best_epochs.append(fit.best_epoch + 1)
        if i < cfg.folds - 1:
            tune.report({METRIC: float(np.mean(scores)), "epoch": i + 1, "parameters": fit.parameters})
    # The student to keep learns from every labelled row for as many epochs as the folds found best; the
    # validation split it reports on is then inside its training data, so its selection score is the CV mean.
    epochs = max(1, round(float(np.mean(best_epochs))))
    final = fit_student(scfg, dataclasses.replace(dcfg, epochs=epochs, patience=epochs),
                        frame[unlabelled | (fold >= 0)], frame[frame["split"] == "validation"], layout,
                        teacher_model)
    with tempfile.TemporaryDirectory(prefix="raykd-trial-") as tmp:
        save_fit(final, Path(tmp) / "student", extra={"kd_weight": dcfg.kd_weight, "cv_folds": cfg.folds})
        tune.report({METRIC: float(np.mean(scores)), "cv_std": float(np.std(scores)), "epoch": cfg.folds,
                     "best_epoch": epochs - 1, "parameters": final.parameters, "final": True},
                    checkpoint=tune.Checkpoint.from_directory(tmp))


@dataclass
class TrialResult:
    trial_id: str
    params: dict[str, Any]
    val_score: float
    epochs: int
    complete: bool  # trained to its end (not stopped by ASHA or the time budget) and saved its student
    parameters: int
    history: list[dict[str, float]]
    error: str | None = None


@dataclass
class Registration:
    name: str
    version: str
    alias: str


@dataclass
class TuneResult:
    output_dir: str
    parent_run_id: str
    tracking_uri: str
    trials: list[TrialResult]
    stopped_early: int
    search_seconds: float
    winner: TrialResult
    test: TaskScores
    teacher_parameters: int
    speedup: float  # the champion's CPU throughput against the teacher's, same responses
    champion_dir: str
    champion_run_id: str
    registered: Registration | None = None
    # The best finished no-KD trial (kd_weight 0) of the champion's family, chosen by the same selection score,
    # and its test scores: what KD bought.
    # None when the champion itself has no KD or the search offered no such trial.
    no_kd: TrialResult | None = None
    no_kd_test: TaskScores | None = None


def search(cfg: TuneJobConfig, run: StageRun, frame: pd.DataFrame, layout: TaskLayout, teacher: TeacherOutput,
           resume: bool) -> tuple[list[TrialResult], dict[str, Any], float]:
    """Run (or resume) the Tune experiment; returns the trials, their checkpoints by id, and the seconds."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    storage = run.out / "ray_tune"
    exp_path = storage / cfg.name
    if cfg.folds > 1:
        frame = frame.assign(fold=cv_folds(frame, cfg.folds, cfg.seed))
    # ASHA's rungs are epochs, or folds when cross-validating (a weak trial stops after its first fold).
    max_t, grace = (cfg.folds, 1) if cfg.folds > 1 else (cfg.distill.epochs, cfg.asha.grace_period)
    trainable = tune.with_resources(
        tune.with_parameters(trial, cfg_dict=dataclasses.asdict(cfg), frame=frame, tasks=layout.to_list(),
                             teacher_model=str(teacher.model_dir)),
        {"cpu": cfg.cpus_per_trial})
    if resume:
        run.say(f"resuming the interrupted search at {exp_path}")
        tuner = tune.Tuner.restore(str(exp_path), trainable=trainable, resume_unfinished=True, resume_errored=True)
    else:
        if exp_path.exists():
            shutil.rmtree(exp_path)  # an earlier search that never got far enough to restore
        tuner = tune.Tuner(
            trainable,
            param_space=search_space(cfg.space),
            tune_config=tune.TuneConfig(
                metric=METRIC, mode="max", num_samples=cfg.num_samples, search_alg=build_searcher(cfg),
                scheduler=ASHAScheduler(time_attr="training_iteration", max_t=max_t, grace_period=grace,
                                        reduction_factor=cfg.asha.reduction_factor)
                if cfg.asha.enabled else FIFOScheduler(),
                time_budget_s=cfg.time_budget_s),
            # One checkpoint per trial (its final student); with num_to_keep set, Tune snapshots the
            # experiment state as each trial checkpoints, so a killed search never re-runs a finished trial.
            run_config=tune.RunConfig(name=cfg.name, storage_path=str(storage), verbose=1,
                                      checkpoint_config=tune.CheckpointConfig(num_to_keep=1)),
        )
    t0 = time.time()
    grid = tuner.fit()
    trials, checkpoints = _collect(grid)
    if not trials:
        raise RaykdError("no trial finished; see the Ray Tune logs under " + str(exp_path))
    return trials, checkpoints, time.time() - t0


def choose(cfg: TuneJobConfig, trials: list[TrialResult], checkpoints: dict[str, Any], teacher: TeacherReference,
           bench: pd.DataFrame, champion_dir: Path) -> tuple[TrialResult, float]:
    """The best finished trial within the size limit and, when `min_speedup` is set, fast enough; its student is
    copied to `champion_dir`. Returns the winner and its speed-up over the teacher (timed as the teacher was)."""
    from raykd.students.artifact import StudentScorer

    max_params = cfg.max_param_ratio * teacher.parameters
    eligible = sorted((t for t in trials if t.complete and t.parameters <= max_params), key=lambda t: -t.val_score)
    if not eligible:
        raise RaykdError(f"no finished trial fits the size limit (<= {max_params:,.0f} parameters)")
    texts, tasks = bench["text"].tolist(), bench["task"].tolist()
    for candidate in eligible:
        with checkpoints[candidate.trial_id].as_directory() as d:
            speedup = (throughput(StudentScorer(Path(d) / "student"), texts, tasks, teacher.benchmark.batch, repeats=3)
                       / teacher.responses_per_s)
            if cfg.min_speedup is None or speedup >= cfg.min_speedup:
                copy_dir_atomic(Path(d) / "student", champion_dir)
                return candidate, speedup
        say("tune", f"trial {candidate.trial_id} is {speedup:.1f}x the teacher, below min_speedup {cfg.min_speedup}")
    raise RaykdError(f"no finished trial within the size limit is {cfg.min_speedup}x faster than the teacher")


def no_kd_rival(cfg: TuneJobConfig, trials: list[TrialResult], winner: TrialResult) -> TrialResult | None:
    """The best finished trial of the winner's family trained without KD (`distill.kd_weight` 0); None when the
    winner has no KD itself or no such trial finished."""
    def family_and_kd(t: TrialResult) -> tuple[str, float]:
        student, distill = trial_configs(cfg, t.params)
        return student.arch, distill.kd_weight

    arch, kd = family_and_kd(winner)
    if kd == 0:
        return None
    rivals = [t for t in trials if t.complete and family_and_kd(t) == (arch, 0.0)]
    return max(rivals, key=lambda t: t.val_score, default=None)


def run_tune(cfg: TuneJobConfig, tracking_uri: str | None = None) -> TuneResult:
    from raykd.distill.handoff import open_student_stage
    from raykd.distill.train import evaluate_fit
    from raykd.runtime import ensure_ray
    from raykd.students.artifact import StudentScorer

    stage = open_student_stage(cfg.teacher, cfg.data, "tune")
    teacher, ds, layout, lineage = stage.teacher, stage.ds, stage.layout, stage.lineage
    frame = stage.frame[stage.frame["y"].notna() | stage.frame["soft"].notna()]
    reference = stage.reference()
    ensure_ray()
    out = Path(cfg.output_dir).expanduser().resolve()
    state_path = out / STATE
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    resume = bool(state.get("parent_run_id")) and _can_restore(out / "ray_tune" / cfg.name)
    params = {**{k: v for k, v in dataclasses.asdict(cfg).items() if k in ("student", "distill")},
              "num_samples": cfg.num_samples, "search_alg": cfg.search_alg,
              "space": json.dumps({k: dataclasses.asdict(v) for k, v in cfg.space.items()})}
    with StageRun.open("tune", cfg.name, out, cfg.tracking,
                       resolve_tracking_uri(tracking_uri, cfg.tracking, teacher.result.tracking_uri), lineage, params,
                       dataset=ds, data_source=(cfg.data or teacher.prepared.data).path,
                       resume_run_id=state.get("parent_run_id") if resume else None) as run:
        write_text_atomic(state_path, json.dumps({"parent_run_id": run.run_id, "started": time.time()}))
        trials, checkpoints, seconds = search(cfg, run, frame, layout, teacher, resume)
        winner, speedup = choose(cfg, trials, checkpoints, reference, stage.bench, out / "champion")
        test_rows = frame[frame["split"] == "test"]
        test = evaluate_fit(StudentScorer(out / "champion"), test_rows, intervals=True)
        no_kd, no_kd_test = no_kd_rival(cfg, trials, winner), None
        if no_kd is not None:
            with checkpoints[no_kd.trial_id].as_directory() as d:
                no_kd_test = evaluate_fit(StudentScorer(Path(d) / "student"), test_rows, intervals=True)
        plot_search(trials, winner, teacher.result, layout, out / "search.png")
        champion_run, champion_uri = _log_trials(trials, winner, cfg, run, lineage, out / "champion", test,
                                                 speedup)
        early = sum(1 for t in trials if not t.complete)
        run.log_metrics({"trials": len(trials), "stopped_early": early, "search_seconds": seconds,
                         "winner.val_score": winner.val_score, "winner.test_score": test.score,
                         "winner.parameters": winner.parameters, "winner.speedup": speedup,
                         **({"no_kd.test_score": no_kd_test.score} if no_kd_test is not None else {})})
        run.log_artifact(out / "search.png")
        registered = None
        if cfg.register_as:
            from raykd.registry import register_champion

            tags = {**lineage.tags(), "raykd.tune_run_id": run.run_id}
            version = register_champion(champion_uri, cfg.register_as, tags)
            registered = Registration(cfg.register_as, str(version.version), "champion")
        result = TuneResult(output_dir=str(out), parent_run_id=run.run_id, tracking_uri=run.tracking_uri,
                            trials=trials, stopped_early=early, search_seconds=seconds, winner=winner, test=test,
                            teacher_parameters=reference.parameters, speedup=speedup,
                            champion_dir=str(out / "champion"), champion_run_id=champion_run, registered=registered,
                            no_kd=no_kd, no_kd_test=no_kd_test)
        run.save(result, "tune_result.json")
    state_path.unlink(missing_ok=True)  # finished: the next run starts a new search
    print_summary(result)
    return result


def _can_restore(path: Path) -> bool:
    from ray import tune

    return tune.Tuner.can_restore(str(path))


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


def _collect(grid: Any) -> tuple[list[TrialResult], dict[str, Any]]:
    trials, checkpoints = [], {}
    for r in grid:
        if r.metrics is None or METRIC not in r.metrics:
            continue
        history = r.metrics_dataframe
        t = TrialResult(trial_id=str(r.metrics.get("trial_id")), params={k: _plain(v) for k, v in r.config.items()},
                        val_score=float(r.metrics[METRIC]), epochs=int(r.metrics.get("epoch", 0)),
                        complete=bool(r.metrics.get("final")) and r.checkpoint is not None,
                        parameters=int(r.metrics.get("parameters", 0)),
                        history=history[[METRIC, "epoch"]].to_dict("records") if history is not None else [],
                        error=str(r.error) if r.error else None)
        trials.append(t)
        if r.checkpoint is not None:
            checkpoints[t.trial_id] = r.checkpoint
    return trials, checkpoints


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _log_trials(trials: list[TrialResult], winner: TrialResult, cfg: TuneJobConfig, run: StageRun, lineage: Lineage,
                champion_dir: Path, test: TaskScores, speedup: float) -> tuple[str, str]:
    """A child run per trial (params, per-epoch validation metric); the winner's also holds the model.
    Returns the winner's run id and logged-model URI."""
    import mlflow

    from raykd.registry import log_model

    champion = ("", "")
    for t in trials:
        is_winner = t is winner
        with run.child(f"trial-{t.trial_id}", lineage,
                       {"student.arch": trial_configs(cfg, t.params)[0].arch, "cv_folds": cfg.folds, **t.params},
                       {"raykd.tune_run_id": run.run_id, "raykd.trial_complete": str(t.complete),
                        **({"raykd.champion": "true"} if is_winner else {})}) as child:
            for i, h in enumerate(t.history, start=1):
                mlflow.log_metric("val.score", float(h[METRIC]), step=int(h.get("epoch") or i))
            mlflow.log_metrics({"parameters": t.parameters, "epochs": t.epochs})
            if is_winner:
                mlflow.log_metrics({"val.score": t.val_score, "test.score": test.score,
                                    "speedup_vs_teacher": speedup,
                                    **{k.replace("/", "."): v for k, v in test.flat("test.").items()
                                       if math.isfinite(v)}})
                champion = (child.info.run_id, log_model(champion_dir).model_uri)
    return champion


def plot_search(trials: list[TrialResult], winner: TrialResult, teacher: Any, layout: TaskLayout,
                path: Path) -> None:
    """Validation metric against parameters for every trial; the winner marked; the teacher as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    done = [t for t in trials if t.complete]
    stopped = [t for t in trials if not t.complete]
    ax.scatter([t.parameters for t in done], [t.val_score for t in done], label="finished trial", alpha=0.8)
    if stopped:
        ax.scatter([t.parameters for t in stopped], [t.val_score for t in stopped], marker="x", color="grey",
                   label="stopped early (ASHA or time budget)")
    ax.scatter([winner.parameters], [winner.val_score], s=180, marker="*", color="crimson", label="champion",
               zorder=5)
    validation = teacher.splits.get("validation")
    teacher_val = validation.score if validation is not None else None
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


def print_summary(result: TuneResult) -> None:
    w = result.winner
    say("tune", f"{len(result.trials)} trials in {result.search_seconds:.0f}s; {result.stopped_early} stopped early "
                "(ASHA or the time budget)")
    for t in sorted(result.trials, key=lambda t: -t.val_score):
        mark = "*" if t.trial_id == w.trial_id else " "
        short = ", ".join(f"{k.split('.')[-1]}={v:.3g}" if isinstance(v, float) else f"{k.split('.')[-1]}={v}"
                          for k, v in t.params.items())
        say("tune", f"{mark} {t.trial_id} val {t.val_score:.4f} epochs {t.epochs:2d} params {t.parameters:>8,} "
                    f"{'done' if t.complete else 'stopped'}  {short}")
    say("tune", f"champion: trial {w.trial_id} val {w.val_score:.4f} test {result.test.score:.4f} params "
                f"{w.parameters:,} ({w.parameters / result.teacher_parameters:.2%} of the teacher), "
                f"{result.speedup:.0f}x faster")
    if result.no_kd is not None and result.no_kd_test is not None:
        say("tune", f"its family without KD: trial {result.no_kd.trial_id} val {result.no_kd.val_score:.4f} test "
                    f"{result.no_kd_test.score:.4f}")
    if result.registered:
        say("tune", f"registered as models:/{result.registered.name}@champion (version {result.registered.version})")
