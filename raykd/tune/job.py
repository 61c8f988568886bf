"""The Tune stage (`raykd tune`, jobs/tune.py): a Ray Tune search over student hyperparameters, the champion,
and its MLflow lineage.

    open      the teacher's prepared data, soft labels and reference figures (raykd.distill.handoff)
    search    one student per trial, validated or cross-validated (raykd.tune.search)
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
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raykd import storage
from raykd.confidence import Calibration, ConfidenceReport, assess_all, plot_coverage
from raykd.evaluation import TaskScores, primary
from raykd.heads import TaskLayout
from raykd.metrics import METRIC_NAMES
from raykd.pipeline import Lineage, StageRun, resolve_tracking_uri, say
from raykd.tune.config import TuneJobConfig
from raykd.tune.search import METRIC, TrialResult, can_restore, choose, no_kd_rival, search, trial_configs

STATE = "tune_state.json"


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
    # The champion's calibrated confidence on the test split, per task (raykd.confidence); empty for a
    # champion saved without a calibration
    confidence: dict[str, ConfidenceReport] = field(default_factory=dict)


def run_tune(cfg: TuneJobConfig, tracking_uri: str | None = None) -> TuneResult:
    from raykd.data.preparation import human_agreement, write_model_data
    from raykd.distill.handoff import open_student_stage
    from raykd.distill.train import evaluate_fit
    from raykd.runtime import ensure_ray
    from raykd.students.artifact import StudentScorer

    stage = open_student_stage(cfg.teacher, cfg.data, "tune")
    teacher, ds, layout, lineage = stage.teacher, stage.ds, stage.layout, stage.lineage
    frame = stage.frame[stage.frame["y"].notna() | stage.frame["soft"].notna()]
    reference = stage.reference()
    ensure_ray()
    location = storage.normalise(cfg.output_dir)
    # Kept in the stage's storage as the search runs (not only when it ends), so a restarted driver finds it.
    state_path = storage.join(location, STATE)
    state = json.loads(storage.read_text(state_path)) if storage.exists(state_path) else {}
    resume = bool(state.get("parent_run_id")) and can_restore(storage.join(location, "ray_tune", cfg.name))
    params = {**{k: v for k, v in dataclasses.asdict(cfg).items() if k in ("student", "distill")},
              "num_samples": cfg.num_samples, "search_alg": cfg.search_alg,
              "space": json.dumps({k: dataclasses.asdict(v) for k, v in cfg.space.items()})}
    with StageRun.open("tune", cfg.name, location, cfg.tracking,
                       resolve_tracking_uri(tracking_uri, cfg.tracking, teacher.result.tracking_uri), lineage, params,
                       dataset=ds, data_source=(cfg.data or teacher.prepared.data).path,
                       resume_run_id=state.get("parent_run_id") if resume else None) as run:
        out = run.out
        storage.write_text(state_path, json.dumps({"parent_run_id": run.run_id, "started": time.time()}))
        trials, checkpoints, seconds = search(cfg, run, frame, layout, teacher, resume)
        winner, speedup = choose(cfg, trials, checkpoints, reference, stage.bench, out / "champion")
        write_model_data(out / "champion", teacher.prepared)
        test_rows = frame[frame["split"] == "test"]
        champion = StudentScorer(out / "champion")
        test = evaluate_fit(champion, test_rows, intervals=True)
        human = human_agreement(cfg.data or teacher.prepared.data, test_rows["id"].astype(str).tolist())
        confidence = champion_confidence(champion, test_rows, out / "coverage.png", human)
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
        if confidence:
            run.log_artifact(out / "coverage.png")
            run.log_metrics({f"champion.{task}.{k}": v for task, r in confidence.items()
                             for k, v in dataclasses.asdict(r).items()
                             if isinstance(v, float) and np.isfinite(v)})
        registered = None
        if cfg.register_as:
            from raykd.registry import register_champion

            tags = {**lineage.tags(), "raykd.tune_run_id": run.run_id}
            version = register_champion(champion_uri, cfg.register_as, tags)
            registered = Registration(cfg.register_as, str(version.version), "champion")
        result = TuneResult(output_dir=run.location, parent_run_id=run.run_id, tracking_uri=run.tracking_uri,
                            trials=trials, stopped_early=early, search_seconds=seconds, winner=winner, test=test,
                            teacher_parameters=reference.parameters, speedup=speedup,
                            champion_dir=run.locate(out / "champion"), champion_run_id=champion_run,
                            registered=registered,
                            no_kd=no_kd, no_kd_test=no_kd_test, confidence=confidence)
        run.save(result, "tune_result.json")
    storage.delete(state_path)  # finished: the next run starts a new search
    print_summary(result)
    return result


def champion_confidence(champion: Any, test_rows: pd.DataFrame, png: Path,
                        human: dict[str, float] | None = None) -> dict[str, ConfidenceReport]:
    """How the champion's calibrated confidence, score sets and review cut hold on the test split, beside two
    human raters' agreement on the same responses (`human`, per task, where the data has a second rater)."""
    from raykd.distill.train import heldout_probabilities

    calibration = Calibration.load(champion.path)
    if calibration is None:
        return {}
    probs, tasks, gold = heldout_probabilities(champion, test_rows)
    reports = assess_all(calibration, champion.layout.tasks, probs, tasks, gold, champion.thresholds)
    human = human or {}
    reports = {t: dataclasses.replace(r, human=human.get(t)) for t, r in reports.items()}
    if reports:
        known = [v for t, v in human.items() if t in reports]
        plot_coverage(reports, png, human=float(np.mean(known)) if known else None)
    return reports


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
    used = sorted({primary(t) for t in layout.tasks})
    ax.set_ylabel("validation " + (METRIC_NAMES[used[0]] if len(used) == 1
                                   else "score (mean of each task's metric)"))
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
    for task, r in result.confidence.items():
        say("tune", f"{task}: ECE {r.ece_before:.3f} -> {r.ece_after:.3f} calibrated"
                    + (f", score sets cover {r.coverage:.1%} of test" if r.coverage is not None else "")
                    + f"; auto-scoring {r.auto_share:.0%} at agreement {r.auto_metric:.3f} (all: {r.all_metric:.3f})"
                    + (f"; two human raters agree at {r.human:.3f}" if r.human is not None else ""))
    if result.registered:
        say("tune", f"registered as models:/{result.registered.name}@champion (version {result.registered.version})")
