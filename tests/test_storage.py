"""Run storage on an object store (raykd.storage), against the S3 API of moto in server mode (a stand-in for S3 or
MinIO: no real object store can be reached here; bench/services.py). Credentials reach raykd only through the
environment, as on the cluster."""

from __future__ import annotations

import json
import time

import pytest

from raykd import storage
from raykd.errors import ConfigError


@pytest.fixture(scope="module")
def s3_server():
    from bench.services import s3_standin

    with s3_standin("runs") as s3:
        yield s3


@pytest.fixture
def s3(s3_server, monkeypatch, tmp_path):
    """The store's credentials and endpoint in the environment; a cache of this test's own; a fresh prefix."""
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("RAYKD_STORAGE_CACHE", str(tmp_path / "cache"))
    return s3_server, f"s3://runs/{tmp_path.name}"


@pytest.mark.parametrize(("location", "problem"), [
    ("runs/teacher", None), ("/abs/runs", None), ("file:///srv/runs", None), ("s3://bucket/prefix", None),
    ("gs://bucket/prefix", None),
    ("s3://AKIA:secret@bucket/prefix", "credentials"), ("s3://bucket/p?endpoint_override=x", "credentials"),
    ("ftp://host/path", "unsupported storage scheme 'ftp'"), ("s3:///prefix", "no bucket"),
])
def test_locations_are_checked(location, problem):
    found = storage.location_problem(location)
    assert (found is None) if problem is None else (problem in found)


def test_a_config_with_credentials_in_its_storage_uri_is_refused_naming_the_key():
    from raykd.distill.config import DistillJobConfig

    with pytest.raises(ConfigError, match=r"DistillJobConfig\.teacher: credentials .* environment"):
        DistillJobConfig(teacher="s3://key:secret@bucket/runs/teacher")
    assert DistillJobConfig(output_dir="s3://bucket/runs/distill").output_dir == "s3://bucket/runs/distill"


def test_local_locations_are_folders(tmp_path):
    folder = storage.stage_folder(tmp_path / "a" / "b")
    assert folder == (tmp_path / "a" / "b") and folder.is_dir()
    assert storage.localize(f"file://{folder}") == folder
    assert storage.join(tmp_path, "x", "y") == str(tmp_path / "x" / "y")
    assert storage.join("s3://b/p/", "x", "y") == "s3://b/p/x/y"
    assert storage.ray_storage(tmp_path) == {"storage_path": str(tmp_path)}


def _folder(root, files: dict[str, str]):
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_a_published_folder_comes_back_and_only_what_changed_is_fetched_again(s3, tmp_path):
    s3_server, location = s3
    src = _folder(tmp_path / "src", {"teacher_result.json": "{}", "model/weights.bin": "w" * 100_000, "a.txt": "1",
                                     "ray_results/run/checkpoint_000000/shard.pt": "s"})
    storage.publish(src, location)
    assert sorted(s3_server.keys(location.removeprefix("s3://runs/"))) == sorted(
        f"{tmp_path.name}/{k}" for k in ("teacher_result.json", "model/weights.bin", "a.txt",
                                         "ray_results/run/checkpoint_000000/shard.pt"))
    local = storage.localize(location)
    assert not (local / "ray_results").exists()  # Ray's checkpoints stay in the store
    assert (local / "model" / "weights.bin").read_text() == "w" * 100_000
    weights_mtime = (local / "model" / "weights.bin").stat().st_mtime_ns
    time.sleep(0.05)
    storage.write_text(storage.join(location, "a.txt"), "2")  # one file changes, one goes
    storage.delete(storage.join(location, "teacher_result.json"))
    again = storage.localize(location)
    assert again == local and (local / "a.txt").read_text() == "2"
    assert not (local / "teacher_result.json").exists()
    assert (local / "model" / "weights.bin").stat().st_mtime_ns == weights_mtime  # not fetched again


def test_a_folder_that_is_not_there_is_an_error_naming_it(s3):
    _, location = s3
    with pytest.raises(FileNotFoundError, match=location):
        storage.localize(storage.join(location, "nothing"))


def test_results_are_uploaded_last_so_a_failed_upload_leaves_no_result(s3, tmp_path, monkeypatch):
    """The connection drops on the second file: the result (first by name) must not be in the store."""
    s3_server, location = s3
    src = _folder(tmp_path / "src", {"distill_result.json": "{}", "model/m.json": "{}", "zz.parquet": "x"})
    copy, calls = storage.shutil.copyfileobj, []

    def dropping(src_file, dst_file, length=0):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("connection reset")
        return copy(src_file, dst_file, length)

    monkeypatch.setattr(storage.shutil, "copyfileobj", dropping)
    with pytest.raises(OSError, match="connection reset"):
        storage.publish(src, location)
    # (pyarrow keeps an emptied "folder" as a marker key ending in /)
    assert [k for k in s3_server.keys(tmp_path.name) if not k.endswith("/")] == [f"{tmp_path.name}/model/m.json"]


def test_a_stage_run_writes_locally_and_publishes_only_when_it_succeeds(s3, tmp_path):
    from raykd.config import TrackingConfig
    from raykd.pipeline import Lineage, StageRun

    s3_server, location = s3
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    lineage = Lineage(data_digest="d", git_commit="c")
    failed = storage.join(location, "failed")
    with pytest.raises(RuntimeError, match="stage broke"), \
            StageRun.open("test", "t", failed, TrackingConfig(experiment="storage"), tracking, lineage, {}) as run:
        (run.out / "half.txt").write_text("half")
        raise RuntimeError("stage broke")
    assert not s3_server.keys(f"{tmp_path.name}/failed") and not run.out.exists()  # nothing published, no scratch
    done = storage.join(location, "done")
    with StageRun.open("test", "t", done, TrackingConfig(experiment="storage"), tracking, lineage, {}) as run:
        assert not storage.is_remote(run.out) and run.location == done
        (run.out / "model").mkdir()
        (run.out / "model" / "m.json").write_text("{}")
        assert run.locate(run.out / "model") == f"{done}/model"
        run.save(Lineage("x", "y"), "test_result.json")
    assert json.loads(storage.read_text(storage.join(done, "test_result.json")))["data_digest"] == "x"
    assert storage.exists(storage.join(done, "model", "m.json")) and not run.out.exists()


def test_a_teacher_location_without_a_result_is_refused(s3, tmp_path):
    from raykd.teacher.job import TeacherOutput

    _, location = s3
    storage.publish(_folder(tmp_path / "t", {"soft_labels.parquet": "x"}), location)
    with pytest.raises(ConfigError, match="teacher: .* not a finished teacher stage's output"):
        TeacherOutput.load(location)


def test_a_store_ray_workers_cannot_write_to_is_named_before_any_training(ray_session, s3):
    # Ray Train's and Tune's workers write their checkpoints from their own processes; where they cannot (a
    # bucket that is not there; nodes started without the store's variables, as this suite's Ray session was),
    # training would fail only after every worker's retries. The check writes from a Ray worker first and
    # names the store's answer and the variables each node needs.
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=r"s3://no-such-bucket/runs: a Ray worker cannot write here \(OSError: "
                                          r".*AWS_ACCESS_KEY_ID.*AWS_ENDPOINT_URL_S3"):
        storage.ray_storage("s3://no-such-bucket/runs")
    assert time.perf_counter() - t0 < 60
    assert storage.ray_storage("/tmp/raykd-runs/x") == {"storage_path": "/tmp/raykd-runs/x"}  # local: no check
