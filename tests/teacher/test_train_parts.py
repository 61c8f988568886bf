"""The teacher recipe's parts that need no cluster: sharding rows over workers, the learning-rate schedule,
and the training state's early-stopping bookkeeping."""

import numpy as np
import pytest
import torch

from raykd.config import TeacherJobConfig, from_dict
from raykd.teacher.train import TrainState, build_optimizer, shard_indices


@pytest.mark.parametrize(("n", "world"), [(10, 2), (11, 2), (7, 3), (3, 4)])
def test_shards_cover_every_row_with_equal_counts(n, world):
    shards = [shard_indices(n, rank, world, seed=5) for rank in range(world)]
    assert len({len(s) for s in shards}) == 1  # equal counts keep collectives in step
    assert set(np.concatenate(shards)) == set(range(n))  # every row is someone's
    assert len(shards[0]) == -(-n // world)
    again = [shard_indices(n, rank, world, seed=5) for rank in range(world)]
    assert all((a == b).all() for a, b in zip(shards, again, strict=True))  # seeded
    assert (shard_indices(n, 0, world, seed=None) == np.arange(len(shards[0]))).all()  # unshuffled for evaluation


def test_learning_rate_warms_up_then_decays_to_zero():
    cfg = from_dict(TeacherJobConfig, {"train": {"lr": 1e-3, "head_lr": 1e-2, "warmup_ratio": 0.2}})
    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    model.add_module("classifier", torch.nn.Linear(2, 2))
    optimizer, schedule = build_optimizer(model, cfg, total_steps=10)
    assert [g["lr"] for g in optimizer.param_groups] == [0.0, 0.0]  # warm-up starts from zero
    seen = []
    for _ in range(10):
        optimizer.step()
        schedule.step()
        seen.append([g["lr"] for g in optimizer.param_groups])
    body, head = zip(*seen, strict=True)
    assert body[0] == pytest.approx(5e-4) and body[1] == pytest.approx(1e-3)  # 2 warm-up steps
    assert head[1] == pytest.approx(1e-2)  # the head at its own rate
    assert body[2] == pytest.approx(1e-3 * 7 / 8) and body[-1] == pytest.approx(0.0)  # linear decay to zero


def test_train_state_tracks_the_best_epoch_and_patience():
    state = TrainState()
    assert state.record(0, 0.5) and state.best_epoch == 0
    assert not state.record(1, 0.4) and state.bad_epochs == 1
    assert state.record(2, 0.6) and (state.best_epoch, state.bad_epochs, state.epoch) == (2, 0, 2)
