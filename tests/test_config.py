from pathlib import Path

import pytest

from raykd.config import TeacherJobConfig, load_config
from raykd.errors import ConfigError


def test_load_and_override(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("train:\n  epochs: 2\n  betas: [0.9, 0.95]\nscaling: {num_workers: 2}\n")
    cfg = load_config(path, TeacherJobConfig, ["train.lr=2e-5", "deepspeed.zero_stage=3"])
    assert cfg.train.epochs == 2 and cfg.train.betas == (0.9, 0.95)
    assert cfg.train.lr == 2e-5 and cfg.deepspeed.zero_stage == 3  # YAML 1.1 reads 2e-5 as a string


@pytest.mark.parametrize(
    ("text", "where", "reason"),
    [
        ("train:\n  epoch: 2\n", "t.yaml.train.epoch", "unknown key"),
        ("train:\n  lr: fast\n", "t.yaml.train.lr", "expected a number"),
        ("deepspeed:\n  zero_stage: 4\n", "t.yaml.deepspeed.zero_stage", "expected one of [0, 1, 2, 3]"),
        ("train:\n  epochs: 0\n", "t.yaml.train.epochs", "must be >= 1"),
        ("- a\n- b\n", "t.yaml", "top level must be a mapping"),
        ("train: [\n", "t.yaml", "invalid YAML"),
    ],
)
def test_invalid_config_names_the_key(tmp_path, text, where, reason):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(path, TeacherJobConfig)
    assert e.value.where.endswith(where) and reason in e.value.reason


def test_errors_survive_pickling():
    """Errors raised inside Ray workers travel to the driver by pickle."""
    import pickle

    from raykd.errors import DataError

    e = pickle.loads(pickle.dumps(ConfigError("model.name_or_path", "unknown backbone 'x'")))
    assert (e.where, e.reason, str(e)) == ("model.name_or_path", "unknown backbone 'x'",
                                          "model.name_or_path: unknown backbone 'x'")
    d = pickle.loads(pickle.dumps(DataError("a.csv", "empty text", row=4)))
    assert (d.path, d.row, str(d)) == ("a.csv", 4, "a.csv, row 4: empty text")


CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.rglob("*.yaml")), ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_shipped_config_loads_and_validates(path):
    from raykd.config import DistillJobConfig, ServeConfig, TuneJobConfig
    from raykd.kt.config import KTJobConfig

    name = path.name
    cls = next(c for prefix, c in (("teacher", TeacherJobConfig), ("distill", DistillJobConfig),
                                   ("tune", TuneJobConfig), ("serve", ServeConfig), ("kt", KTJobConfig))
               if name.startswith(prefix))
    cfg = load_config(path, cls)
    if hasattr(cfg, "validate"):
        cfg.validate(str(path))
