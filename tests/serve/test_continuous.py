"""A continuous-score data set (ASAP-SAS set 1 scored by the mean of its two raters, 0-3 in halves, in the generic
format) through the same stages as class scores: teacher (Ray Train + DeepSpeed) -> soft labels (mean, sd) ->
KD student -> `raykd predict` = HTTP."""

import math

import numpy as np
import pandas as pd
import pytest
import requests

from raykd.cli import main
from raykd.serve.config import ServeConfig
from raykd.serve.launch import build_app

TASK = "asap_1_mean"


@pytest.fixture(scope="module")
def continuous_run(continuous_teacher, tracking_uri, tmp_path_factory):
    from raykd.distill.config import DistillConfig, DistillJobConfig, StudentConfig
    from raykd.distill.job import run_distill

    teacher, data = continuous_teacher
    distilled = run_distill(DistillJobConfig(
        name="c", output_dir=str(tmp_path_factory.mktemp("continuous_distill")), teacher=str(teacher.output_dir),
        students={"lstm": StudentConfig(min_freq=1, hidden=16, embed_dim=16)},
        distill=DistillConfig(epochs=4, patience=2)), tracking_uri=tracking_uri)
    return teacher, distilled, data


def test_a_continuous_task_trains_teacher_and_student(continuous_run):
    teacher, distilled, _ = continuous_run
    test = teacher.splits["test"]
    metrics = test.tasks[TASK]
    assert set(metrics) == {"pearson", "rmse", "qwk"} and 0 <= metrics["rmse"] <= 3
    low, high = test.intervals[TASK]
    assert low <= metrics["pearson"] <= high  # Pearson r with a bootstrap interval
    kd = distilled.student("lstm", "kd", TASK)
    assert kd is not None and math.isfinite(kd.test.tasks[TASK]["pearson"])
    assert kd.test.intervals[TASK][0] <= kd.test.tasks[TASK]["pearson"]


def test_a_continuous_student_scores_the_same_through_predict_and_http(continuous_run, endpoint, tmp_path):
    from ray import serve

    from raykd.serve.client import score_file

    _, distilled, data = continuous_run
    model = distilled.student("lstm", "kd", TASK).model_dir
    pd.read_csv(data)[["id", "task", "text"]].head(30).to_csv(tmp_path / "in.csv", index=False)
    assert main(["predict", "--model", str(model), "--input", str(tmp_path / "in.csv"),
                 "--output", str(tmp_path / "offline.csv")]) == 0
    offline = pd.read_csv(tmp_path / "offline.csv", dtype={"id": str, "prediction": str, "score_set": str})
    scores = offline["prediction"].astype(float)
    assert scores.between(0, 3).all() and (scores * 2 == (scores * 2).round()).all()  # in range, in halves
    assert {"p_mean", "p_sd"} <= set(offline.columns) and (offline["p_sd"] > 0).all()
    ends = offline["score_set"].str.split("-")  # the conformal interval "lo-hi" ("x" where its ends meet)
    assert all(float(e[0]) <= s <= float(e[-1]) for e, s in zip(ends, scores, strict=True))

    serve.run(build_app(ServeConfig(model=str(model), poll_interval_s=0)), name="cont", route_prefix="/cont")
    try:
        score_file(f"{endpoint}/cont", str(tmp_path / "in.csv"), str(tmp_path / "served.csv"))
        served = pd.read_csv(tmp_path / "served.csv", dtype={"id": str, "prediction": str, "score_set": str})
        pd.testing.assert_frame_equal(served, offline, check_exact=False, atol=1e-5)
        info = requests.get(f"{endpoint}/cont/v1/tasks", timeout=30).json()["tasks"][0]
        assert (info["kind"], info["low"], info["high"], info["step"]) == ("continuous", 0.0, 3.0, 0.5)
        one = requests.post(f"{endpoint}/cont/v1/score", json={"task": TASK, "text": "a"}, timeout=30).json()
        result = one["results"][0]
        assert float(result["prediction"]) in np.arange(0, 3.5, 0.5) and set(result["probabilities"]) == {"mean", "sd"}
    finally:
        serve.delete("cont")
