from pathlib import Path

import pytest

from raykd.config import load_config
from raykd.errors import ConfigError
from raykd.teacher.config import TeacherJobConfig


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
    from raykd.distill.config import DistillJobConfig
    from raykd.kt.config import KTJobConfig
    from raykd.serve.config import ServeConfig
    from raykd.tune.config import TuneJobConfig

    name = path.name
    cls = next(c for prefix, c in (("teacher", TeacherJobConfig), ("distill", DistillJobConfig),
                                   ("tune", TuneJobConfig), ("serve", ServeConfig), ("kt", KTJobConfig))
               if name.startswith(prefix))
    assert isinstance(load_config(path, cls), cls)  # loading validates, rules included


def _bounded_keys(cls, prefix=()):
    """(key path, a value just outside its declared range) for every range-constrained key of config class
    `cls` and its sections, read from the class's own declarations."""
    import dataclasses
    import typing

    import annotated_types

    hints = typing.get_type_hints(cls, include_extras=True)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if typing.get_origin(tp) in (typing.Union, __import__("types").UnionType):
            tp = args[0]
        if dataclasses.is_dataclass(tp):
            yield from _bounded_keys(tp, (*prefix, f.name))
            continue
        if typing.get_origin(tp) is dict and dataclasses.is_dataclass(typing.get_args(tp)[1]):
            yield from _bounded_keys(typing.get_args(tp)[1], (*prefix, f.name, "x"))
            continue
        metadata = []
        while typing.get_origin(tp) is typing.Annotated:
            metadata += list(tp.__metadata__)
            tp = typing.get_args(tp)[0]
        for m in metadata:
            for bound in getattr(m, "metadata", [m]):
                if isinstance(bound, annotated_types.Ge):
                    yield (*prefix, f.name), bound.ge - (1 if isinstance(bound.ge, int) else 0.5)
                elif isinstance(bound, annotated_types.Gt):
                    yield (*prefix, f.name), bound.gt - (1 if isinstance(bound.gt, int) else 0)
                elif isinstance(bound, annotated_types.Lt):
                    yield (*prefix, f.name), bound.lt + (1 if isinstance(bound.lt, int) else 0.5)
                elif isinstance(bound, annotated_types.Le):
                    yield (*prefix, f.name), bound.le + 1


def _stage_configs():
    from raykd.distill.config import DistillJobConfig
    from raykd.kt.config import KTJobConfig
    from raykd.serve.config import ServeConfig
    from raykd.teacher.config import EnsembleJobConfig
    from raykd.tune.config import TuneJobConfig

    return [TeacherJobConfig, EnsembleJobConfig, DistillJobConfig, TuneJobConfig, ServeConfig, KTJobConfig]


NEEDS = {"EnsembleJobConfig": {"teachers": ["a", "b"]}}  # what a config needs to be valid at all


@pytest.mark.parametrize("cls", [c for c in _stage_configs() if c.__name__ != "EnsembleJobConfig"],
                         ids=lambda c: c.__name__)  # the ensemble's only rule is a cross-field one, below
def test_every_range_is_checked_however_the_config_is_built(cls):
    """For each stage's config: one bad range per key, from a dict, names that key; `--set` and a file go
    through the same check, and so does building the class in code."""
    import dataclasses

    from raykd.config import apply_overrides, from_dict

    keys = list(_bounded_keys(cls))
    assert len(keys) >= 4, keys
    for path, bad in keys:
        data = NEEDS.get(cls.__name__, {}) | {}
        node = data = {**data}
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = bad
        if "space" in path:  # a search dimension needs its type
            node.setdefault("type", "uniform")
        with pytest.raises(ConfigError) as e:
            from_dict(cls, data, "cfg")
        assert e.value.where == "cfg." + ".".join(path), (path, bad, str(e.value))
        override = apply_overrides(dict(NEEDS.get(cls.__name__, {})), [f"{'.'.join(path)}={bad}"])
        if "space" not in path:
            with pytest.raises(ConfigError, match="must be"):
                from_dict(cls, override, "cfg")
    top = [(path, bad) for path, bad in keys if len(path) == 1]
    for (name,), bad in top[:3]:  # in code too, by the class's own name
        default = from_dict(cls, dict(NEEDS.get(cls.__name__, {})))
        with pytest.raises(ConfigError, match=rf"{cls.__name__}\.{name}: must be"):
            dataclasses.replace(default, **{name: bad})


@pytest.mark.parametrize(("cls", "data", "where"), [
    ("TeacherJobConfig", {"deepspeed": {"offload_params": True}}, "cfg.deepspeed.offload_params"),
    ("TeacherJobConfig", {"model": {"head": "pair"}, "lora": {"enabled": False}}, "cfg.model.head"),
    ("DistillJobConfig", {"distill": {"kd_weight": 1.5}}, "cfg.distill.kd_weight"),
    ("DistillJobConfig", {"students": {"s": {"init_embeddings": "teacher"}}}, "cfg.students.s.init_embeddings"),
    ("DistillJobConfig", {"students": {"s": {"vocab_size": 2}}}, "cfg.students.s.vocab_size"),
    ("DistillJobConfig", {"students": {}}, "cfg.students"),
    ("TuneJobConfig", {"space": {"distill.lr": {"type": "uniform", "low": 2, "high": 1}}}, "cfg.space.distill.lr.high"),
    ("TuneJobConfig", {"folds": 2}, "cfg.folds"),
    ("ServeConfig", {"max_batch_size": 300}, "cfg.max_ongoing_requests"),
    ("ServeConfig", {"request_timeout_s": 2}, "cfg.request_timeout_s"),
    ("KTJobConfig", {"teacher": {"d_model": 10, "heads": 4}}, "cfg.teacher.d_model"),
    ("KTJobConfig", {"search": {"kd_weight": [1.0]}}, "cfg.search.kd_weight"),
    ("KTJobConfig", {"teacher": {"recurrent": {"seeds": [1, 1]}}}, "cfg.teacher.recurrent.seeds"),
    ("EnsembleJobConfig", {"teachers": ["one"]}, "cfg.teachers"),
    ("TeacherJobConfig", {"scaling": {"resources_per_worker": {"GPU": 1}}}, "cfg.scaling.resources_per_worker"),
    ("TeacherJobConfig", {"output_dir": "s3://key:secret@bucket/runs"}, "cfg.output_dir"),
    ("TuneJobConfig", {"teacher": "ftp://host/runs/teacher"}, "cfg.teacher"),
    ("KTJobConfig", {"output_dir": "s3:///no-bucket"}, "cfg.output_dir"),
    ("EnsembleJobConfig", {"teachers": ["runs/a", "s3://b/p?x=1"]}, "cfg.teachers[1]"),
])
def test_cross_field_rules_name_their_key(cls, data, where):
    from raykd.config import from_dict

    config_cls = next(c for c in _stage_configs() if c.__name__ == cls)
    with pytest.raises(ConfigError) as e:
        from_dict(config_cls, data, "cfg")
    assert e.value.where == where, str(e.value)


def test_a_key_that_takes_one_value_or_a_list_names_the_key_and_the_bad_item():
    from raykd.config import from_dict
    from raykd.kt.config import KTJobConfig

    for value, where, reason in ((0, "cfg.teacher.recurrent.hidden", "must be >= 1, got 0"),
                                 ([32, 0], "cfg.teacher.recurrent.hidden[1]", "must be >= 1, got 0"),
                                 ("x", "cfg.teacher.recurrent.hidden", "expected an integer")):
        with pytest.raises(ConfigError) as e:
            from_dict(KTJobConfig, {"teacher": {"recurrent": {"hidden": value}}}, "cfg")
        assert e.value.where == where and reason in str(e.value), str(e.value)
    assert from_dict(KTJobConfig, {"teacher": {"recurrent": {"hidden": [32, 64]}}}).teacher.recurrent.hidden == [32, 64]
