"""The Tune stage's search (raykd.tune.job runs the stage): each trial a Tune function fitting one student
(raykd.distill.train.fit_student), reporting the validation metric every epoch so ASHA can stop weak trials
early; its final report carries the trained student as a checkpoint. With `folds: k` (k > 1) a trial is scored by
k-fold cross-validation over the labelled train and validation rows instead (folds stratified by task and score,
the same for every trial; one report per fold, so ASHA stops weak trials after a fold), then refit on all of them
for the folds' mean best epoch count: a 150-response validation split ranks students by noise, the mean of k
folds much less. Students are single-process, so training runs inside the Tune function (the Train V2 pattern: a
Trainer is launched inside a function, never passed to Tuner). Re-running after an interruption restores the
experiment (`Tuner.restore`). `choose` picks the champion, `no_kd_rival` the trial it is compared with.
"""

from __future__ import annotations

import dataclasses
import math
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
from raykd.footprint import throughput
from raykd.heads import TaskLayout
from raykd.io import copy_dir_atomic
from raykd.pipeline import StageRun, say
from raykd.teacher.job import TeacherOutput
from raykd.tune.config import ParamRange, TuneJobConfig

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

    from raykd.distill.train import calibrate, fit_student, heldout_probabilities, save_fit

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
    fit = calibrate(fit, heldout_probabilities(fit, val), dcfg.review, "validation")
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

    from raykd.distill.train import calibrate, fit_student, heldout_probabilities, refit_thresholds, save_fit

    fold = frame["fold"].to_numpy()
    unlabelled = (frame["split"] == "unlabelled").to_numpy()
    scores, best_epochs = [], []
    held: tuple[list, list, list] = ([], [], [])  # out-of-fold probabilities, tasks, labels: the calibration set
    for i in range(cfg.folds):
        fit = fit_student(scfg, dcfg, frame[unlabelled | ((fold >= 0) & (fold != i))], frame[fold == i], layout,
                          teacher_model)
        scores.append(fit.val_score)
        best_epochs.append(fit.best_epoch + 1)
        for whole, part in zip(held, heldout_probabilities(fit, frame[fold == i]), strict=True):
            whole.extend(part)
        if i < cfg.folds - 1:
            tune.report({METRIC: float(np.mean(scores)), "epoch": i + 1, "parameters": fit.parameters})
    # The student to keep learns from every labelled row for as many epochs as the folds found best; the
    # validation split it reports on is then inside its training data, so its selection score is the CV mean.
    epochs = max(1, round(float(np.mean(best_epochs))))
    final = fit_student(scfg, dataclasses.replace(dcfg, epochs=epochs, patience=epochs),
                        frame[unlabelled | (fold >= 0)], frame[frame["split"] == "validation"], layout,
                        teacher_model)
    final = calibrate(refit_thresholds(final, held), held, dcfg.review, "out-of-fold")
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


def search(cfg: TuneJobConfig, run: StageRun, frame: pd.DataFrame, layout: TaskLayout, teacher: TeacherOutput,
           resume: bool) -> tuple[list[TrialResult], dict[str, Any], float]:
    """Run (or resume) the Tune experiment; returns the trials, their checkpoints by id, and the seconds."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from raykd import storage

    tune_storage = storage.join(run.location, "ray_tune")  # trials on any node checkpoint there
    exp_path = storage.join(tune_storage, cfg.name)
    if cfg.folds > 1:
        frame = frame.assign(fold=cv_folds(frame, cfg.folds, cfg.seed))
    # ASHA's rungs are epochs, or folds when cross-validating (a weak trial stops after its first fold).
    max_t, grace = (cfg.folds, 1) if cfg.folds > 1 else (cfg.distill.epochs, cfg.asha.grace_period)
    trainable = tune.with_resources(
        tune.with_parameters(trial, cfg_dict=dataclasses.asdict(cfg), frame=frame, tasks=layout.to_list(),
                             teacher_model=teacher.model_location),  # trials may run on any node
        {"cpu": cfg.cpus_per_trial})
    if resume:
        run.say(f"resuming the interrupted search at {exp_path}")
        where = storage.ray_storage(exp_path)
        tuner = tune.Tuner.restore(where["storage_path"], trainable=trainable, resume_unfinished=True,
                                   resume_errored=True, storage_filesystem=where.get("storage_filesystem"))
    else:
        storage.delete(exp_path)  # an earlier search that never got far enough to restore
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
            run_config=tune.RunConfig(name=cfg.name, **storage.ray_storage(tune_storage), verbose=1,
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


def can_restore(location: str) -> bool:
    """Whether an interrupted search at `location` (a folder or an object store) can be resumed."""
    from ray import tune

    from raykd import storage

    where = storage.ray_location(location)  # a question only: nothing is written, so no worker check
    return tune.Tuner.can_restore(where["storage_path"], storage_filesystem=where.get("storage_filesystem"))


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


