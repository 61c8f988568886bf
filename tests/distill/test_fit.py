"""Student fits on data whose labels are learnable; KD uses teacher rows, the baseline ignores them."""

import numpy as np

from raykd.data import load_dataset, make_splits
from raykd.distill.config import DistillConfig, StudentConfig
from raykd.distill.train import evaluate_fit, fit_student
from raykd.heads import TaskLayout
from tests.fixtures import write_pasta_task


def test_multilabel_student_learns_and_tunes_thresholds(tmp_path):
    ds = make_splits(load_dataset(write_pasta_task(tmp_path / "p", n_train=300, n_test=60)), validation=0.2)
    layout = TaskLayout.of(ds.tasks)
    f = ds.frame
    cfg = DistillConfig(kd_weight=0.0, epochs=15, patience=5, lr=1e-2)
    fit = fit_student(StudentConfig(min_freq=1), cfg, f[f["split"] == "train"], f[f["split"] == "validation"], layout)
    scores = evaluate_fit(fit, f[f["split"] == "test"])
    assert scores.score > 0.9, scores  # the criteria are literally in the text
    assert len(fit.thresholds["task1"]) == 3


def test_kd_learns_from_rows_without_gold_that_the_baseline_leaves_out(tmp_path):
    ds = make_splits(load_dataset(write_pasta_task(tmp_path / "p", n_train=200, n_test=40)), validation=0.2)
    layout = TaskLayout.of(ds.tasks)
    f = ds.frame.copy()
    # A "teacher" that knows the answer; half the train rows lose their gold label (as unscored responses).
    f["soft"] = [np.clip(np.asarray(y, dtype=np.float32), 0.05, 0.95) for y in f["y"]]
    train = f[f["split"] == "train"].copy()
    train.loc[train.index[::2], "y"] = None
    val = f[f["split"] == "validation"]
    kd = fit_student(StudentConfig(min_freq=1), DistillConfig(kd_weight=0.7, epochs=12, lr=1e-2), train, val, layout)
    base = fit_student(StudentConfig(min_freq=1), DistillConfig(kd_weight=0.0, epochs=12, lr=1e-2), train, val, layout)
    assert kd.val_score > 0.85
    assert base.val_score > 0.5  # still learns from the labelled half

