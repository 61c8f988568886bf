"""Shared fixtures: the real data folder, and one local Ray session for every test that needs Ray.

A test that uses the Ray session (directly or through a fixture built on it) is marked `ray` here; every other
test may not start Ray, so `pytest -m "not ray"` is the fast loop and stays fast."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from raykd.data import data_dir

# Offline by construction: nothing in the suite may fetch weights or data.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "ray_session" in item.fixturenames:  # the whole fixture closure
            item.add_marker(pytest.mark.ray)


@pytest.fixture(autouse=True)
def _ray_only_where_marked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test not marked `ray` that would start Ray fails, saying so, instead of slowing the fast loop."""
    if request.node.get_closest_marker("ray") is None:
        import raykd.runtime

        def refuse(*args: object, **kwargs: object) -> None:
            pytest.fail("this test starts Ray: use the ray_session fixture (which marks it `ray`)")

        monkeypatch.setattr(raykd.runtime, "ensure_ray", refuse)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real datasets. Absent: skip with the reason, except in CI where their absence is a failure."""
    root = data_dir()
    if not (root / "asap_sas").is_dir():
        msg = f"shared data not found at {root} (set RAYKD_DATA_DIR)"
        if os.environ.get("RAYKD_REQUIRE_DATA") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return root


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray cluster for the whole suite. Logical CPUs exceed the 2 cores so that a Train
    controller, its workers and Ray Data/Tune actors all find room (they are mostly idle-waiting)."""
    import ray

    from raykd.runtime import RUNTIME_ENV, serve_environment

    if not ray.is_initialized():
        os.environ.update(serve_environment())  # Serve runs as `raykd serve` runs it (HAProxy ingress)
        # Replicas write each access line at once (production buffers 1,000; errors flush at once either way),
        # so tests can read what a request became.
        os.environ["RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE"] = "1"
        ray.init(num_cpus=4, include_dashboard=False, log_to_driver=True, runtime_env=RUNTIME_ENV)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory) -> Iterator[str]:
    """The MLflow store shared by the suite: SQLite by default; with RAYKD_TEST_TRACKING=server, the cluster's
    configuration instead (bench/services.py: `mlflow server` on PostgreSQL, artifacts on the S3 API of a moto
    stand-in), so every stage, the registry, lineage and Serve run against it unchanged."""
    if os.environ.get("RAYKD_TEST_TRACKING") == "server":
        from bench.services import mlflow_server, postgres, s3_standin

        with postgres() as db, s3_standin() as s3, mlflow_server(db.url, s3.bucket_uri("mlflow"), s3) as uri:
            yield uri
        return
    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    yield f"sqlite:///{path}"


@pytest.fixture(scope="session")
def tiny_teacher(shared_data, ray_session, tracking_uri, tmp_path_factory):
    """A tiny gpt-oss + LoRA teacher trained once through Ray Train + DeepSpeed ZeRO-3 (2 workers) on an
    ASAP-SAS set 1 slice, with its soft labels exported; later stages (distill, predict, tune, serve) use it."""
    from raykd.teacher.job import run_teacher
    from tests.fixtures import tiny_teacher_config

    return run_teacher(tiny_teacher_config(tmp_path_factory.mktemp("tiny_teacher")), tracking_uri=tracking_uri)


@pytest.fixture(scope="session")
def continuous_teacher(shared_data, ray_session, tracking_uri, tmp_path_factory):
    """tiny_teacher's recipe on a continuous task: ASAP-SAS set 1 scored by the mean of its two raters (0-3 in
    halves, bench/continuous.py), 240 responses in the generic format. Returns the result and the file."""
    from bench.continuous import data_options, write_mean_scores
    from raykd.teacher.job import run_teacher
    from tests.fixtures import tiny_teacher_config

    out = tmp_path_factory.mktemp("continuous")
    data = write_mean_scores(shared_data / "asap_sas", out / "mean_scores.csv", [1], rows=240)
    cfg = tiny_teacher_config(out, data={"path": str(data), "format": "generic", "options": data_options(),
                                         "include_unlabelled": True, "limit_per_task": None},
                              model={"max_length": 48}, train={"epochs": 2, "batch_size": 8})
    return run_teacher(cfg, tracking_uri=tracking_uri), data


@pytest.fixture(scope="session")
def tiny_stack(shared_data, ray_session, tracking_uri, tmp_path_factory):
    """A stacked teacher (MiniLM representation, every learner group, 3 folds) on the same ASAP-SAS set 1 slice
    as `tiny_teacher`, so that the two can form an ensemble."""
    from raykd.teacher.job import run_teacher
    from tests.fixtures import tiny_stack_config

    return run_teacher(tiny_stack_config(tmp_path_factory.mktemp("tiny_stack")), tracking_uri=tracking_uri)


@pytest.fixture(scope="session")
def asap1_student(shared_data, tmp_path_factory):
    """A small LSTM student (no teacher) for ASAP-SAS set 1, saved as an artifact; serving and predict tests use it."""
    from raykd.config import ReviewConfig
    from raykd.data import make_splits, read_asap
    from raykd.distill.config import DistillConfig, StudentConfig
    from raykd.distill.train import calibrate, fit_student, heldout_probabilities
    from raykd.heads import TaskLayout
    from raykd.students.artifact import save_student

    ds = make_splits(read_asap(shared_data / "asap_sas", sets=[1]), seed=0)
    f = ds.frame
    layout = TaskLayout.of(ds.tasks)
    validation = f[f["split"] == "validation"]
    fit = fit_student(StudentConfig(), DistillConfig(kd_weight=0.0, epochs=2, threads=2), f[f["split"] == "train"],
                      validation, layout)
    fit = calibrate(fit, heldout_probabilities(fit, validation), ReviewConfig(rate=0.3), "validation")
    path = save_student(tmp_path_factory.mktemp("student") / "asap1", fit.model, "lstm", fit.vocab, layout,
                        fit.thresholds, 128, calibration=fit.calibration)
    return path, ds


@pytest.fixture(scope="session")
def zoo_cache(tmp_path_factory) -> Path:
    """The model-zoo cache of the suite. In CI a fresh one, so every backbone a test uses is prepared from its
    packages; elsewhere one per machine ($RAYKD_TEST_ZOO_DIR, default ~/.cache/raykd/test-zoo), kept between
    runs and checked against the packages' checksums each time, so the fast loop does not convert 700 MB of
    weights again."""
    if os.environ.get("RAYKD_REQUIRE_DATA") == "1":
        return tmp_path_factory.mktemp("zoo")
    return Path(os.environ.get("RAYKD_TEST_ZOO_DIR", Path.home() / ".cache" / "raykd" / "test-zoo"))


@pytest.fixture(scope="session")
def smollm2(zoo_cache) -> Path:
    """SmolLM2-135M-Instruct prepared from its GGUF package: the small real LLM of the tests."""
    from raykd import zoo

    return zoo.prepare("smollm2-135m", zoo_cache)


@pytest.fixture(scope="session")
def tiny_kt(shared_data, ray_session, tracking_uri, tmp_path_factory):
    """The knowledge-tracing pipeline once, tiny: 80 ASSISTments learners, MiniLM skill knowledge, a one-layer
    attention teacher on Ray Train (2 workers), a no-KD and a KD DKT student on Ray Tune, the simulation."""
    from raykd.config import from_dict
    from raykd.kt.config import KTJobConfig
    from raykd.kt.job import run_kt

    cfg = from_dict(KTJobConfig, {
        "name": "kt-tiny", "output_dir": str(tmp_path_factory.mktemp("kt")), "register_as": "kt-tiny",
        "data": {"path": "assistments2009_kt/dkvmn_assist2009_updated", "limit": 80, "max_length": 50,
                 "validation": 0.2},
        "teacher": {"d_model": 16, "layers": 1, "heads": 2, "epochs": 2, "batch_size": 16,
                    "recurrent": {"seeds": [0], "embed": 8, "hidden": 16, "epochs": 2}},
        "student": {"embed": 8, "hidden": 8, "epochs": 2, "batch_size": 16},
        "search": {"hidden": [8], "kd_weight": [0.0, 1.0], "cpus_per_trial": 0.5}})
    simulation = run_kt(cfg, tracking_uri=tracking_uri)
    return cfg, simulation
