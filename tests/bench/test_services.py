"""The cluster's MLflow, for real (bench/services.py): `mlflow server` on PostgreSQL with artifacts on the S3 API
(moto in server mode stands in for S3/MinIO; nothing else is mocked). A student logged, registered and aliased
there lands in PostgreSQL's registry tables and the bucket, and `raykd predict` on `models:/NAME@champion` scores
exactly as on the folder; every service is gone when its context ends."""

from __future__ import annotations

import os
import subprocess

import mlflow
import pandas as pd
import pytest

from raykd.cli import main

CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")


@pytest.fixture(scope="module", autouse=True)
def postgresql_installed():
    """Debian's postgresql (scripts/install_system_tools.sh): its absence fails CI and skips elsewhere."""
    from bench.services import _pg_bin

    try:
        _pg_bin("postgres")
    except RuntimeError as e:
        if os.environ.get("RAYKD_REQUIRE_DATA") == "1":
            pytest.fail(str(e))
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def cluster_mlflow():
    from bench.services import mlflow_server, postgres, s3_standin

    with postgres() as db, s3_standin() as s3, mlflow_server(db.url, s3.bucket_uri("mlflow"), s3) as uri:
        yield db, s3, uri


def _rows(db, sql: str) -> list[tuple]:
    import psycopg2

    with psycopg2.connect(host="127.0.0.1", port=db.port, user=db.user, password=db.password,
                          dbname=db.database) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def test_registry_and_scoring_through_mlflow_on_postgres_and_s3(cluster_mlflow, asap1_student, tmp_path,
                                                                monkeypatch):
    from raykd.registry import CHAMPION, log_model, register_champion

    db, s3, uri = cluster_mlflow
    for key in CREDENTIALS:  # a client holds no S3 credentials: artifacts travel through the server's proxy
        monkeypatch.delenv(key, raising=False)
    path, ds = asap1_student
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        mlflow.set_experiment("raykd-cluster-test")
        with mlflow.start_run() as run:
            mlflow.set_tag("raykd.data_digest", ds.digest())
            info = log_model(path)
        version = register_champion(info.model_uri, "asap1-cluster", {"raykd.data_digest": ds.digest()})
    finally:
        mlflow.set_tracking_uri(previous)

    # the registry and the run live in PostgreSQL ...
    assert ("asap1-cluster",) in _rows(db, "select name from registered_models")
    assert (CHAMPION, int(version.version)) in _rows(db, "select alias, version from registered_model_aliases "
                                                         "where name = 'asap1-cluster'")
    assert (run.info.run_id,) in _rows(db, "select run_uuid from runs")
    # ... and the model's files in the bucket, under the server's artifact root
    keys = s3.keys("mlflow/")
    assert any(k.endswith("/MLmodel") for k in keys), keys[:10]
    assert any(k.endswith("/raykd_model.json") for k in keys)

    f = ds.frame[ds.frame["split"] == "test"].head(40)
    f[["id", "text"]].to_csv(tmp_path / "in.csv", index=False)
    assert main(["predict", "--model", str(path), "--input", str(tmp_path / "in.csv"),
                 "--output", str(tmp_path / "local.csv")]) == 0
    assert main(["predict", "--model", f"models:/asap1-cluster@{CHAMPION}", "--tracking-uri", uri,
                 "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "served.csv")]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "served.csv"), pd.read_csv(tmp_path / "local.csv"))


def test_services_leave_nothing_behind():
    from bench.services import _port_open, mlflow_server, postgres, s3_standin

    with postgres() as db, s3_standin() as s3, mlflow_server(db.url, s3.bucket_uri("mlflow"), s3) as uri:
        ports = [db.port, int(s3.endpoint.rsplit(":", 1)[1]), int(uri.rsplit(":", 1)[1])]
        assert all(_port_open(p) for p in ports)
        assert _rows(db, "select current_user") == [("raykd",)]
    assert not any(_port_open(p) for p in ports)
    running = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert not [line for line in running.splitlines() if any(f" {p}" in line for p in ports)
                and ("postgres" in line or "moto" in line or "mlflow" in line)]
