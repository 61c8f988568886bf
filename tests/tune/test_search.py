"""Ray Tune over students on the tiny teacher's soft labels: ASHA, champion, registry lineage, resume."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pandas as pd
import yaml

from raykd.cli import main
from raykd.config import from_dict
from raykd.tune.config import TuneJobConfig
from raykd.tune.job import run_tune
from raykd.tune.search import build_searcher


def tune_dict(tiny_teacher, out: Path, **extra) -> dict:
    cfg = {
        "name": "t", "output_dir": str(out), "teacher": tiny_teacher.output_dir,
        "student": {"arch": "lstm", "min_freq": 1},
        "distill": {"epochs": 4, "patience": 4},
        "space": {"distill.kd_weight": {"type": "uniform", "low": 0.0, "high": 1.0},
                  "distill.lr": {"type": "choice", "values": [1.0e-5, 3.0e-3, 1.0e-2]},
                  "student.hidden": {"type": "choice", "values": [8, 16]}},
        "num_samples": 6, "search_alg": "random", "max_concurrent_trials": 1, "time_budget_s": 300,
        "asha": {"grace_period": 1, "reduction_factor": 2}, "register_as": f"tune-test-{os.getpid()}", "seed": 0,
    }
    cfg.update(extra)
    return cfg


def test_search_champion_registry_and_lineage(tiny_teacher, ray_session, tracking_uri, tmp_path, capsys):
    cfg = from_dict(TuneJobConfig, tune_dict(tiny_teacher, tmp_path / "tune"))
    result = run_tune(cfg, tracking_uri=tracking_uri)

    assert len(result.trials) == 6
    assert result.stopped_early >= 1  # ASHA cut the trials that learn nothing (lr 1e-5)
    assert result.winner.parameters <= 0.01 * result.teacher_parameters
    finished = [t for t in result.trials if t.complete]
    assert result.winner.val_score == max(t.val_score for t in finished)  # no size or speed limit bit here
    assert (tmp_path / "tune" / "search.png").stat().st_size > 10_000
    assert (tmp_path / "tune" / "champion" / "raykd_model.json").exists()
    (task,) = result.confidence  # the champion's confidence on test, beside two human raters (ASAP-SAS Score2)
    assert 0 < result.confidence[task].human <= 1

    name = result.registered.name
    client = mlflow.tracking.MlflowClient(tracking_uri)
    mv = client.get_model_version_by_alias(name, "champion")
    assert mv.tags["raykd.teacher_run_id"] == tiny_teacher.run_id
    assert mv.tags["raykd.soft_labels_digest"] == tiny_teacher.soft_labels_digest
    assert mv.tags["raykd.tune_run_id"] == result.parent_run_id
    assert mv.tags["raykd.data_digest"] and mv.tags["raykd.git_commit"]
    children = client.search_runs([client.get_run(result.parent_run_id).info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{result.parent_run_id}'")
    assert len(children) == 6

    capsys.readouterr()
    assert main(["lineage", f"{name}@champion", "--tracking-uri", tracking_uri]) == 0
    chain = capsys.readouterr().out
    for step in ("student run", "tune search", "soft labels", "teacher run", "teacher data", "data digest", "code"):
        assert f"{step}:" in chain
    assert tiny_teacher.run_id in chain and tiny_teacher.soft_labels_digest in chain

    # the registered champion knows its data: people's corrections of what it queues are recorded against it
    ref = f"models:/{name}@champion"
    queue = tmp_path / "queue.csv"
    assert main(["review-queue", "--model", ref, "--output", str(queue), "--count", "5",
                 "--tracking-uri", tracking_uri]) == 0
    picked = pd.read_csv(queue, dtype={"id": str})
    assert len(picked) == 5 and picked["id"].is_unique
    corrections = tmp_path / "corrections.csv"
    pd.DataFrame({"id": picked["id"], "task": picked["task"], "score": 1}).to_csv(corrections, index=False)
    assert main(["feedback", "--model", ref, "--corrections", str(corrections), "--store", str(tmp_path / "store"),
                 "--tracking-uri", tracking_uri]) == 0
    version = json.loads((tmp_path / "store" / "v0001" / "version.json").read_text())
    assert version["model_version"] == str(mv.version) and version["data_digest"] == tiny_teacher.data_digest
    assert version["corrected"] == 5


def test_bad_search_space_is_named():
    import pytest

    from raykd.errors import ConfigError

    with pytest.raises(ConfigError, match=r"config.space.distill.lambda: unknown hyperparameter"):
        from_dict(TuneJobConfig, {"space": {"distill.lambda": {"type": "uniform", "low": 0, "high": 1}}})
    with pytest.raises(ConfigError, match=r"config.space.distill.lr.low: loguniform needs low > 0"):
        from_dict(TuneJobConfig, {"space": {"distill.lr": {"type": "loguniform", "low": 0, "high": 1}}})
    with pytest.raises(ConfigError, match=r"config.space.student.arch: a grid needs search_alg: random"):
        from_dict(TuneJobConfig, {"space": {"student.arch": {"type": "grid", "values": ["lstm", "moe"]}}})
    with pytest.raises(ConfigError, match=r"config.folds: use 1 .* or at least 3 folds"):
        from_dict(TuneJobConfig, {"folds": 2})


def test_searchers_limit_concurrent_trials():
    # A searcher passed to Tune overrides TuneConfig.max_concurrent_trials, so the limit must live in it.
    for alg in ("random", "optuna"):
        cfg = from_dict(TuneJobConfig, {"search_alg": alg, "max_concurrent_trials": 3})
        assert build_searcher(cfg).max_concurrent == 3


def test_killed_search_resumes(tiny_teacher, ray_session, tracking_uri, tmp_path):
    out = tmp_path / "tune"
    config = tmp_path / "tune.yaml"
    # Trials long enough (12 epochs, no early stop) that the kill lands mid-search, not after it.
    config.write_text(yaml.safe_dump(tune_dict(tiny_teacher, out, num_samples=6, register_as=None,
                                               distill={"epochs": 12, "patience": 12},
                                               asha={"grace_period": 12, "reduction_factor": 2})))
    env = {**os.environ, "RAY_ADDRESS": ray_session.get_runtime_context().gcs_address}
    cmd = [sys.executable, "jobs/tune.py", "--config", str(config), "--tracking-uri", tracking_uri]
    repo = Path(__file__).resolve().parents[2]
    exp = out / "ray_tune" / "t"
    first = subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True)
    done_before = wait_for_finished_trials(exp, 2, timeout=300)
    time.sleep(1)  # the driver snapshots the experiment state as the trial's checkpoint lands
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert len(done_before) >= 2, "fewer than two trials finished before the kill"
    assert len(finished_trials(exp)) < 6, "the search ended before the kill; the test proves nothing"
    results_before = {name: (exp / name / "result.json").read_text() for name in done_before}

    second = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:]
    assert "resuming the interrupted search" in second.stdout
    result = json.loads((out / "tune_result.json").read_text())
    assert len(result["trials"]) == 6
    assert len(finished_trials(exp)) == 6
    # The trials finished before the kill were kept, not run again.
    assert {name: (exp / name / "result.json").read_text() for name in done_before} == results_before


def finished_trials(exp: Path) -> set[str]:
    done = set()
    for result in exp.glob("*/result.json"):
        if '"final": true' in result.read_text():
            done.add(result.parent.name)
    return done


def wait_for_finished_trials(exp: Path, n: int, timeout: float) -> set[str]:
    deadline = time.time() + timeout
    while time.time() < deadline and len(finished_trials(exp)) < n:
        time.sleep(0.2)
    return finished_trials(exp)


def test_cross_validated_search_over_families(tiny_teacher, ray_session, tracking_uri, tmp_path):
    """folds: 3 scores every trial by 3-fold CV (one report per fold) and keeps a refit student; a grid crosses
    the families (LSTM, MoE) with kd_weight 0 and 0.5, and the champion is the best CV mean of them all. With
    ASHA off every trial finishes, so a KD champion is scored on test beside its family's best no-KD trial."""
    space = {"student.arch": {"type": "grid", "values": ["lstm", "moe"]},
             "distill.kd_weight": {"type": "grid", "values": [0.0, 0.5]},
             "distill.lr": {"type": "loguniform", "low": 2.0e-3, "high": 5.0e-3}}
    cfg = from_dict(TuneJobConfig, tune_dict(tiny_teacher, tmp_path / "cv", space=space, folds=3, num_samples=1,
                                             register_as=None, distill={"epochs": 3, "patience": 3},
                                             asha={"enabled": False},
                                             student={"arch": "lstm", "min_freq": 1, "num_experts": 2}))
    result = run_tune(cfg, tracking_uri=tracking_uri)

    assert {(t.params["student.arch"], t.params["distill.kd_weight"]) for t in result.trials} == {
        ("lstm", 0.0), ("lstm", 0.5), ("moe", 0.0), ("moe", 0.5)}  # the grid: each family, with and without KD
    finished = [t for t in result.trials if t.complete]
    assert len(finished) == 4 and all(len(t.history) == 3 for t in finished)  # no ASHA: every fold of every trial
    # the best CV mean among the students within the size limit (1% of the teacher's parameters: the MoE
    # students of this grid are larger than that beside the tiny teacher)
    eligible = [t for t in finished if t.parameters <= cfg.max_param_ratio * result.teacher_parameters]
    assert eligible and result.winner.val_score == max(t.val_score for t in eligible)
    manifest = json.loads((tmp_path / "cv" / "champion" / "raykd_model.json").read_text())
    assert manifest["arch"] == result.winner.params["student.arch"]
    assert manifest["cv_folds"] == 3
    # What KD bought: beside a KD champion, the best no-KD trial of its family, scored on the same test rows.
    if result.winner.params["distill.kd_weight"] > 0:
        assert result.no_kd.params == {**result.winner.params, "distill.kd_weight": 0.0,
                                       "distill.lr": result.no_kd.params["distill.lr"]}
        assert set(result.no_kd_test.tasks) == set(result.test.tasks)
    else:
        assert result.no_kd is None and result.no_kd_test is None


def test_cv_folds_are_stratified_and_stable():
    import numpy as np
    import pandas as pd

    from raykd.tune.search import cv_folds

    frame = pd.DataFrame({"task": ["a"] * 40 + ["b"] * 20, "split": (["train"] * 30 + ["validation"] * 6
                                                                      + ["test"] * 4) + ["unlabelled"] * 20,
                          "y": [i % 2 for i in range(40)] + [None] * 20})
    folds = cv_folds(frame, 3, seed=0)
    assert (folds[36:] == -1).all() and set(folds[:36]) == {0, 1, 2}
    for y in (0, 1):  # each score is spread evenly over the folds
        assert np.bincount(folds[:36][np.arange(36) % 2 == y]).tolist() == [6, 6, 6]
    assert (cv_folds(frame, 3, seed=0) == folds).all()


def test_a_continuous_search_registers_a_champion_that_takes_corrections(continuous_teacher, ray_session,
                                                                          tracking_uri, tmp_path, capsys):
    """Tune selects continuous students by Pearson r; the champion queues responses by their spread, and a
    correction is a score in the task's range, on its step (anything else is refused, naming the row)."""
    teacher, _ = continuous_teacher
    cfg = from_dict(TuneJobConfig, tune_dict(teacher, tmp_path / "tune", num_samples=2, asha={"enabled": False},
                                             register_as=f"tune-continuous-{os.getpid()}"))
    result = run_tune(cfg, tracking_uri=tracking_uri)
    assert len(result.trials) == 2 and math.isfinite(result.winner.val_score)
    (task,) = result.confidence
    assert result.confidence[task].coverage is not None  # the conformal intervals' coverage on test

    ref = f"models:/{result.registered.name}@champion"
    queue = tmp_path / "queue.csv"
    assert main(["review-queue", "--model", ref, "--output", str(queue), "--count", "4",
                 "--tracking-uri", tracking_uri]) == 0
    picked = pd.read_csv(queue, dtype={"id": str})
    corrections = tmp_path / "corrections.csv"
    args = ["feedback", "--model", ref, "--corrections", str(corrections), "--store", str(tmp_path / "store"),
            "--tracking-uri", tracking_uri]
    pd.DataFrame({"id": picked["id"], "task": task, "score": [1.5, 2.25, 3, 0]}).to_csv(corrections, index=False)
    capsys.readouterr()
    assert main(args) == 2
    assert f"{corrections}, row 3: " in capsys.readouterr().err and not (tmp_path / "store").exists()
    pd.DataFrame({"id": picked["id"], "task": task, "score": [1.5, 2.5, 3, 0]}).to_csv(corrections, index=False)
    assert main(args) == 0
    assert json.loads((tmp_path / "store" / "v0001" / "version.json").read_text())["corrected"] == 4
