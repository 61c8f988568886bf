"""Cross-fitted against in-sample soft labels: the same students distilled from a stacked teacher's two soft-label
tables (raykd.stack.job writes both), and `raykd predict` on a teacher's folder against the teacher's own test
figures. Stages of bench.quality.

A teacher's probabilities on the responses it was fitted on are over-confident: students that learn from them
learn the teacher's memory of its training responses. The stack's cross-fitted table gives each labelled
training response the probabilities of a meta-model that never saw it; both tables agree on every other response.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raykd.evaluation import TaskScores

ARMS = ("cross-fitted", "in-sample")


def _fit_arm(scfg: Any, dcfg: Any, frame: pd.DataFrame, layout: Any, teacher_model: str) -> TaskScores:
    from raykd.distill.train import evaluate_fit, fit_student

    fit = fit_student(scfg, dcfg, frame[frame["split"].isin(["train", "unlabelled"])],
                      frame[frame["split"] == "validation"], layout, teacher_model)
    return evaluate_fit(fit, frame[frame["split"] == "test"], intervals=True)


def crossfit_stage(tune_cfg: Any, params: dict[str, Any], stack_dir: Path, seeds: int) -> dict[str, Any]:
    """Per arm (cross-fitted, in-sample) and seed, the test scores of a student with the champion's settings
    (`params`; KD weight 0.5 where the champion has none), early-stopped on validation. The fits run as Ray
    tasks, one core each."""
    import ray

    from raykd.distill.handoff import open_student_stage
    from raykd.distill.softlabels import attach_soft_labels
    from raykd.stack.job import INSAMPLE
    from raykd.tune.search import trial_configs

    scfg, dcfg = trial_configs(tune_cfg, params)
    if dcfg.kd_weight == 0:
        dcfg = dataclasses.replace(dcfg, kd_weight=0.5)
    stage = open_student_stage(stack_dir, None, "bench crossfit")
    frames = {"cross-fitted": stage.frame,
              "in-sample": attach_soft_labels(stage.ds, stack_dir / INSAMPLE, require_all=False,
                                              source=f"the stack at {stack_dir} (in sample)")}
    remote = ray.remote(_fit_arm).options(num_cpus=1)
    jobs = {(arm, seed): remote.remote(scfg, dataclasses.replace(dcfg, seed=seed, threads=1),
                                       frames[arm][frames[arm]["y"].notna() | frames[arm]["soft"].notna()],
                                       stage.layout, str(stage.teacher.model_dir))
            for seed in range(seeds) for arm in ARMS}
    scores = dict(zip(jobs, ray.get(list(jobs.values())), strict=True))
    return {"student": dataclasses.asdict(scfg), "kd_weight": dcfg.kd_weight, "seeds": seeds,
            "arms": {arm: [dataclasses.asdict(scores[(arm, s)]) for s in range(seeds)] for arm in ARMS}}


def crossfit_section(result: dict[str, Any], tasks: list[str]) -> list[str]:
    """Report lines: per set, each arm's test QWK (mean over seeds), and the means with their intervals."""
    from raykd.tables import markdown

    arms = {arm: [TaskScores(**s) for s in runs] for arm, runs in result["arms"].items()}

    def mean(arm: str, task: str | None = None) -> float:
        return float(np.mean([s.score if task is None else s.tasks[task]["qwk"] for s in arms[arm]]))

    rows = [[t, *[f"{mean(a, t):.3f}" for a in ARMS], f"{mean(ARMS[0], t) - mean(ARMS[1], t):+.3f}"] for t in tasks]
    rows.append(["**mean**", *[f"{mean(a):.3f} " + "; ".join(f"[{s.score_interval[0]:.3f}, {s.score_interval[1]:.3f}]"
                                                             for s in arms[a] if s.score_interval)
                               for a in ARMS], f"{mean(ARMS[0]) - mean(ARMS[1]):+.3f}"])
    return ["", f"Students from the stack's cross-fitted against its in-sample soft labels (the champion's settings, "
                f"KD weight {result['kd_weight']}, {result['seeds']} seed(s) each, early stopping on validation; test "
                "QWK, the mean row with each seed's bootstrap interval):", "",
            markdown(["set", *ARMS, "difference"], rows)]


def predict_stage(model_dir: Path, teacher_dir: Path) -> dict[str, Any]:
    """`raykd predict` (the whole-file path) on the teacher's model folder over its test split, written as an
    ASAP-SAS file to a temporary folder that is removed afterwards: its per-set QWK."""
    from raykd.data.preparation import reuse
    from raykd.predict.file import predict_file

    ds = reuse(teacher_dir, None, "bench predict")
    test = ds.frame[(ds.frame["split"] == "test") & ds.frame["y"].notna()]
    rows = pd.DataFrame({"Id": test["id"], "EssaySet": test["task"].str.removeprefix("asap_"),
                         "EssayText": test["text"], "Score1": [int(y) for y in test["y"]]})
    with tempfile.TemporaryDirectory(prefix="raykd-bench-predict-") as tmp:
        rows.to_csv(Path(tmp) / "test.csv", index=False)
        metrics = predict_file(str(model_dir), str(Path(tmp) / "test.csv"), str(Path(tmp) / "scores.csv"),
                               stream="off")
    return {"model": str(model_dir), "qwk": {t: m["qwk"] for t, m in metrics.items()}}
