"""The teacher recipe's parts that need no cluster: sharding rows over workers, the learning-rate schedule,
and the training state's early-stopping bookkeeping."""

import numpy as np
import pytest
import torch

from raykd.config import from_dict
from raykd.teacher.config import TeacherJobConfig
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


def test_a_flat_start_does_not_use_up_patience():
    # a small-data student predicting the majority score (QWK 0) for its first epochs has not stopped improving
    state = TrainState()
    for epoch in range(5):
        state.record(epoch, 0.0)
        assert not state.should_stop(2)
    assert state.record(5, 0.3) and state.best_epoch == 5
    assert not state.record(6, 0.0) and not state.should_stop(2)  # patience counts from the first change
    assert not state.record(7, 0.2) and state.should_stop(2)


def test_balanced_class_weights_for_skewed_tasks_only():
    import pandas as pd

    from raykd.data.dataset import MULTICLASS, TaskSpec
    from raykd.errors import ConfigError
    from raykd.heads import TaskLayout
    from raykd.teacher.config import TrainConfig
    from raykd.teacher.train import loss_weights

    layout = TaskLayout.of({"a": TaskSpec("a", MULTICLASS, ("0", "1", "2", "3")),
                            "b": TaskSpec("b", MULTICLASS, ("0", "1"))})
    # Task a: 6 zeros, 2 ones, 0 twos, 2 threes (n=10, 3 classes present): weight n / (3 * count), capped at 1.5.
    frame = pd.DataFrame({"task": ["a"] * 10 + ["b"] * 4, "y": [0] * 6 + [1] * 2 + [3] * 2 + [0, 0, 1, 1]})
    cpu = torch.device("cpu")
    w = loss_weights(frame, layout, TrainConfig(class_weight="balanced", class_weight_tasks=["a"],
                                                class_weight_max=1.5), cpu)
    assert set(w) == {"a"}
    np.testing.assert_allclose(w["a"].numpy(), [10 / 18, 1.5, 1.0, 1.5], rtol=1e-6)
    assert loss_weights(frame, layout, TrainConfig(), cpu) == {}
    with pytest.raises(ConfigError, match=r"train.class_weight_tasks: no task named 'c'"):
        loss_weights(frame, layout, TrainConfig(class_weight="balanced", class_weight_tasks=["c"]), cpu)


def test_length_batches_cover_every_row_with_little_padding():
    from raykd.teacher.train import length_batches

    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 200, size=1000)
    idx = rng.permutation(1000)
    batches = length_batches(idx, lengths, size=16, seed=3, window=8)
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    assert [len(b) for b in batches].count(16) >= len(batches) - 8  # one short batch per window at most
    padded = sum(len(b) * lengths[b].max() for b in batches)
    plain = sum(len(b) * lengths[b].max() for b in (idx[i:i + 16] for i in range(0, 1000, 16)))
    assert padded < 0.75 * plain
    again = length_batches(idx, lengths, size=16, seed=3, window=8)
    assert all((a == b).all() for a, b in zip(batches, again, strict=True))
    assert not all((a == b).all() for a, b in zip(batches, length_batches(idx, lengths, 16, seed=4, window=8),
                                                   strict=True))


def test_cpu_bf16_turns_on_deepspeeds_own_autocast(monkeypatch):
    # DeepSpeed's engine switches off an outer torch.autocast, so CPU bf16 must be in its config.
    from raykd.teacher import model as teacher_model
    from raykd.teacher.train import deepspeed_config

    cfg = TeacherJobConfig()
    cfg.model.cpu_bf16 = True
    monkeypatch.setattr(teacher_model, "cpu_bf16_supported", lambda: True)
    assert deepspeed_config(cfg, on_gpu=False)["torch_autocast"] == {"enabled": True, "dtype": "bfloat16"}
    assert not deepspeed_config(cfg, on_gpu=True)["torch_autocast"]["enabled"]  # GPUs use DeepSpeed's bf16
    monkeypatch.setattr(teacher_model, "cpu_bf16_supported", lambda: False)
    with pytest.warns(UserWarning, match="no native bf16"):
        assert not deepspeed_config(cfg, on_gpu=False)["torch_autocast"]["enabled"]
    cfg.model.cpu_bf16 = False
    assert not deepspeed_config(cfg, on_gpu=False)["torch_autocast"]["enabled"]
