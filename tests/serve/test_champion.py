"""A replica's model lifecycle against a real MLflow registry (SQLite): one cache folder per version, the old
version's download removed on a swap, and a broken champion retried with back-off, never filling the disk."""

import shutil
import tempfile
import time

import mlflow
import pytest
import requests

from raykd.registry import log_model, register_champion
from raykd.scoring import MANIFEST, load_scorer
from raykd.serve.champion import ModelSource
from raykd.serve.config import ServeConfig
from raykd.serve.launch import build_app


@pytest.fixture(scope="module")
def small_student(shared_data, tmp_path_factory):
    """A small, quickly trained ASAP-SAS set 1 student: what it scores does not matter here, that it loads does."""
    from raykd.data import read_asap
    from raykd.distill.config import DistillConfig, StudentConfig
    from raykd.distill.train import fit_student, save_fit
    from raykd.heads import TaskLayout

    ds = read_asap(shared_data / "asap_sas", sets=[1])
    rows = ds.frame.head(200)
    fit = fit_student(StudentConfig(hidden=8, embed_dim=8), DistillConfig(kd_weight=0.0, epochs=1), rows,
                      rows.tail(50), TaskLayout.of(ds.tasks))
    return save_fit(fit, tmp_path_factory.mktemp("small") / "student")


@pytest.fixture(scope="module")
def registered(small_student, tracking_uri, tmp_path_factory):
    """A registered model with a good version, a broken one (its vocabulary is not JSON) and a newer good one."""
    mlflow.set_tracking_uri(tracking_uri)
    # An earlier test may leave another store's experiment active (MLflow keeps it per process): name ours.
    mlflow.set_experiment("champion-lifecycle")
    broken = tmp_path_factory.mktemp("broken") / "model"
    shutil.copytree(small_student, broken)
    (broken / "vocab.json").write_text("{not json")
    name = "champion-lifecycle"
    uris = {}
    for kind, folder in (("good", small_student), ("broken", broken)):
        with mlflow.start_run():
            uris[kind] = log_model(folder).model_uri
    versions = [register_champion(uris[kind], name, {"raykd.data_digest": "test"}).version
                for kind in ("good", "broken", "good")]  # the last: a newer version of a working model
    client = mlflow.tracking.MlflowClient(tracking_uri)
    client.set_registered_model_alias(name, "champion", versions[0])
    return name, [str(v) for v in versions], client


def test_a_broken_champion_is_retried_with_back_off_and_leaves_one_copy_per_version(registered, tracking_uri,
                                                                                     tmp_path, monkeypatch):
    name, (good, bad, newer), client = registered
    scratch = tmp_path / "tmp"  # the replica's temporary space: nothing may pile up here either
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    client.set_registered_model_alias(name, "champion", good)
    source = ModelSource(f"models:/{name}@champion", tracking_uri, scratch / "cache", poll_interval_s=1,
                         max_backoff_s=8, load=load_scorer)
    assert source.served.info.version == good and source.staleness(0) is None
    client.set_registered_model_alias(name, "champion", bad)
    now, attempts, waits = 0.0, 0, []
    while attempts < 20:
        before = source.failure.failures if source.failure else 0
        assert source.check(now) is False
        if source.failure.failures > before:
            attempts += 1
            waits.append(source.failure.retry_at - now)
        now += 1
    assert waits[:5] == [1, 2, 4, 8, 8]  # doubled per failure, capped at max_backoff_s
    assert source.served.info.version == good  # still serving what works
    stale = source.staleness(now)
    assert stale.wanted_version == bad and stale.failures == 20 and "JSONDecodeError" in stale.reason
    copies = [p.relative_to(scratch / "cache").parts[:2] for p in scratch.rglob(MANIFEST)]
    assert copies == [(name, good)], copies  # one copy of what is served, none of the broken version
    assert [p.name for p in scratch.iterdir()] == ["cache"]  # no stray downloads beside the cache

    client.set_registered_model_alias(name, "champion", newer)
    assert source.check(now) is True and source.served.info.version == newer and source.staleness(now) is None
    assert sorted(p.name for p in (scratch / "cache" / name).iterdir()) == [newer]  # the old version went
    source.close()
    assert not (scratch / "cache").exists()


def test_healthz_says_the_served_version_is_stale(ray_session, registered, tracking_uri, endpoint):
    from ray import serve

    name, (good, bad, _), client = registered
    client.set_registered_model_alias(name, "champion", good)
    serve.run(build_app(ServeConfig(model=f"models:/{name}@champion", tracking_uri=tracking_uri,
                                    poll_interval_s=0.2, max_backoff_s=0.4)), name="stale", route_prefix="/stale")
    try:
        assert requests.get(f"{endpoint}/stale/healthz", timeout=30).json()["status"] == "ok"
        client.set_registered_model_alias(name, "champion", bad)
        deadline, health = time.time() + 60, {}
        while time.time() < deadline and health.get("status") != "stale":
            time.sleep(0.3)
            health = requests.get(f"{endpoint}/stale/healthz", timeout=30).json()
        assert health["status"] == "stale" and health["model"]["version"] == good
        assert health["stale"]["wanted_version"] == bad and health["stale"]["failures"] >= 1
        r = requests.post(f"{endpoint}/stale/v1/score", json={"task": "asap_1", "text": "vinegar"}, timeout=30)
        assert r.status_code == 200 and r.json()["model"]["version"] == good
        client.set_registered_model_alias(name, "champion", good)  # rolled back: healthy again
        deadline = time.time() + 30
        while time.time() < deadline and health["status"] != "ok":
            time.sleep(0.3)
            health = requests.get(f"{endpoint}/stale/healthz", timeout=30).json()
        assert health["status"] == "ok" and health["stale"] is None
    finally:
        serve.delete("stale")
