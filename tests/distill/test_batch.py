"""The batch objectives against hand-computed values: the student's mix of gold and teacher terms per task,
and the teacher's per-task hard loss weighted by each task's share of the batch."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from raykd.data import TaskSpec
from raykd.distill.config import DistillConfig
from raykd.distill.train import batch_objective
from raykd.heads import TaskLayout
from raykd.teacher.train import batch_loss

A = TaskSpec("a", "multiclass", ("0", "1"))
B = TaskSpec("b", "multilabel", ("x", "y"))
LAYOUT = TaskLayout.of([A, B])  # outputs: a -> [0:2], b -> [2:4]


class Rows:
    """What batch_objective reads from an Encoded frame: tasks, gold labels, teacher vectors."""

    def __init__(self, tasks, y, soft):
        self.tasks, self.y, self.soft = np.asarray(tasks), list(y), list(soft)


def ce(logits, k):
    return math.log(sum(math.exp(v) for v in logits)) - logits[k]


def bce(z, t):
    p = 1 / (1 + math.exp(-z))
    return -(t * math.log(p) + (1 - t) * math.log(1 - p))


def test_rows_without_gold_add_only_the_soft_term():
    logits = torch.tensor([[2.0, 0.0, 0, 0], [0.5, 1.5, 0, 0]])
    teacher = np.array([0.25, 0.75], dtype=np.float32)
    data = Rows(["a", "a"], [0, None], [np.array([0.9, 0.1], np.float32), teacher])
    cfg = DistillConfig(kd_weight=0.4, mix="convex", objective="soft_ce", temperature=1.0)
    got = batch_objective({"logits": logits}, data, np.arange(2), LAYOUT, cfg).item()
    hard = ce([2.0, 0.0], 0)  # only row 0 has gold
    soft = np.mean([-(0.9 * math.log(1 / (1 + math.exp(-2.0))) + 0.1 * math.log(1 / (1 + math.exp(2.0)))),
                    -(0.25 * math.log(1 / (1 + math.exp(1.0))) + 0.75 * math.log(1 / (1 + math.exp(-1.0))))])
    assert got == pytest.approx(0.6 * hard + 0.4 * soft, rel=1e-5)
    # kd_weight 0: the gold term alone, whatever the teacher says.
    assert batch_objective({"logits": logits}, data, np.arange(2), LAYOUT,
                           DistillConfig(kd_weight=0.0)).item() == pytest.approx(hard, rel=1e-5)


def test_each_term_is_weighted_by_the_rows_that_have_it_across_tasks():
    logits = torch.tensor([[1.0, 0.0, 9, 9], [9, 9, 0.5, -0.5], [9, 9, 2.0, 0.0]])
    data = Rows(["a", "b", "b"], [1, (1, 0), (0, 1)], [None, None, None])
    got = batch_objective({"logits": logits}, data, np.arange(3), LAYOUT, DistillConfig(kd_weight=0.0)).item()
    task_a = ce([1.0, 0.0], 1)
    task_b = np.mean([bce(0.5, 1), bce(-0.5, 0), bce(2.0, 0), bce(0.0, 1)])
    assert got == pytest.approx((1 * task_a + 2 * task_b) / 3, rel=1e-5)  # per task, weighted by its rows


def test_teacher_batch_loss_weights_each_task_by_its_share():
    logits = torch.tensor([[1.0, 0.0, 9, 9], [0.0, 3.0, 9, 9], [9, 9, 0.5, -0.5]])
    sub = pd.DataFrame({"task": ["a", "a", "b"], "y": [0, 1, (1, 1)]})
    got = batch_loss(logits, sub, LAYOUT, {}).item()
    a = np.mean([ce([1.0, 0.0], 0), ce([0.0, 3.0], 1)])
    b = np.mean([bce(0.5, 1), bce(-0.5, 1)])
    assert got == pytest.approx(2 / 3 * a + 1 / 3 * b, rel=1e-5)
