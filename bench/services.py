"""The cluster's services, real and on 127.0.0.1 (issue 31): PostgreSQL, an S3-API store and `mlflow server` over
both, as the chart runs them (helm/raykd/values.yaml: `mlflow.backendStore`, `mlflow.artifacts.type: s3`).

    with postgres() as db, s3_standin() as s3, mlflow_server(db.url, s3.bucket_uri("mlflow"), s3) as mlflow_uri:
        ...  # raykd stages with --tracking-uri mlflow_uri

- PostgreSQL is Debian's server, started in a temporary data directory with a random password (scram-sha-256,
  listening on 127.0.0.1 only) and stopped with it. PostgreSQL refuses to run as root: as root it runs as the
  `postgres` user.
- The S3 store is a STAND-IN: moto in server mode speaks S3's API over HTTP (what MinIO or S3 would answer), so
  boto3, MLflow and pyarrow talk to it unchanged; no real object storage can be reached from here.
- `mlflow server` keeps runs and the registry in PostgreSQL and proxies artifacts to the bucket
  (`--serve-artifacts`): clients need no S3 credentials, only the server has them, from its environment.

Each service is a process group of its own, ended (TERM, then KILL) when its context exits, so nothing is left
behind even when the body fails.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_until(ready: Callable[[], bool], what: str, proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    """Poll `ready()` until it is true; fail naming `what` and the tail of its log if the process exits first or
    time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        with contextlib.suppress(Exception):
            if ready():
                return
        time.sleep(0.25)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    state = f"exited with {proc.returncode}" if proc.poll() is not None else f"not ready after {timeout:.0f}s"
    raise RuntimeError(f"{what} {state}; its log ({log}) ends:\n{tail}")


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((HOST, port)) == 0


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as r:
        return r.status == 200


def _as_user(cmd: list[str], user: str | None) -> list[str]:
    return ["runuser", "-u", user, "--", *cmd] if user else cmd


@contextlib.contextmanager
def _process(cmd: list[str], log: Path, env: dict[str, str] | None = None,
             user: str | None = None) -> Iterator[subprocess.Popen]:
    """`cmd` in a new process group (as `user` when given), its output in `log`; the group ended on exit."""
    cmd = _as_user(cmd, user)
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        yield proc
    finally:
        stop_group(proc)


def stop_group(proc: subprocess.Popen, grace: float = 15.0) -> None:
    """TERM the process group of `proc`, KILL what is left after `grace` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
            with contextlib.suppress(ProcessLookupError):  # the leader has gone; its children go with the group
                os.killpg(proc.pid, signal.SIGKILL)
            return
        except subprocess.TimeoutExpired:
            continue


def _pg_bin(name: str) -> str:
    import glob

    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))[::-1]), None)
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} not found (Debian: apt-get install postgresql)")
    return str(Path(found).resolve())


@dataclass(frozen=True)
class Postgres:
    port: int
    password: str
    database: str
    user: str = "raykd"

    @property
    def url(self) -> str:
        """The SQLAlchemy URL MLflow's --backend-store-uri takes."""
        return f"postgresql+psycopg2://{self.user}:{self.password}@{HOST}:{self.port}/{self.database}"


def _create_database(db: Postgres, attempts: int = 40) -> None:
    import psycopg2

    for attempt in range(attempts):  # the port opens a moment before the server accepts logins
        try:
            conn = psycopg2.connect(host=HOST, port=db.port, user=db.user, password=db.password, dbname="postgres")
            break
        except psycopg2.OperationalError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.25)
    try:
        conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{db.database}"')
    finally:
        conn.close()


@contextlib.contextmanager
def postgres(database: str = "mlflow") -> Iterator[Postgres]:
    """A PostgreSQL server in a new temporary data directory, one database `database`; removed on exit."""
    base = Path(tempfile.mkdtemp(prefix="raykd-pg-"))  # not under pytest's root-only tmp: postgres must reach it
    db = Postgres(free_port(), secrets.token_hex(16), database)
    user = "postgres" if os.geteuid() == 0 else None  # PostgreSQL refuses to run as root
    try:
        (base / "pwfile").write_text(db.password + "\n")
        if user:
            shutil.chown(base, "postgres", "postgres")
            shutil.chown(base / "pwfile", "postgres", "postgres")
        subprocess.run(_as_user([_pg_bin("initdb"), "-D", str(base / "data"), "-U", db.user, "-E", "UTF8",
                                 "--auth=scram-sha-256", f"--pwfile={base / 'pwfile'}"], user),
                       check=True, capture_output=True)
        (base / "pwfile").unlink()
        log = base / "postgres.log"
        cmd = [_pg_bin("postgres"), "-D", str(base / "data"), "-p", str(db.port), "-c", f"listen_addresses={HOST}",
               "-c", f"unix_socket_directories={base}"]
        with _process(cmd, log, user=user) as proc:
            wait_until(lambda: _port_open(db.port), "postgres", proc, log)
            _create_database(db)
            yield db
    finally:
        shutil.rmtree(base, ignore_errors=True)


@dataclass(frozen=True)
class S3:
    endpoint: str
    bucket: str
    region: str = "us-east-1"
    # moto accepts any keys; fresh ones per store, so no fixed secret looks like a default to copy
    access_key: str = field(default_factory=lambda: secrets.token_hex(8))
    secret_key: str = field(default_factory=lambda: secrets.token_hex(16))

    def env(self) -> dict[str, str]:
        """What a client or server needs in its environment (never in configs or MLflow params)."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_DEFAULT_REGION": self.region, "MLFLOW_S3_ENDPOINT_URL": self.endpoint,
                "AWS_ENDPOINT_URL_S3": self.endpoint}

    def bucket_uri(self, prefix: str = "") -> str:
        return f"s3://{self.bucket}/{prefix}".rstrip("/")

    def client(self) -> object:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=self.region,
                            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key)

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]


@contextlib.contextmanager
def s3_standin(bucket: str = "raykd") -> Iterator[S3]:
    """moto's S3 API server (a stand-in for S3 or MinIO) with an empty bucket `bucket`."""
    port = free_port()
    base = Path(tempfile.mkdtemp(prefix="raykd-s3-"))
    try:
        log = base / "moto.log"
        cmd = [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)]
        with _process(cmd, log) as proc:
            s3 = S3(f"http://{HOST}:{port}", bucket)
            wait_until(lambda: _http_ok(f"{s3.endpoint}/moto-api/"), "moto (S3 stand-in)", proc, log)
            s3.client().create_bucket(Bucket=bucket)
            yield s3
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def mlflow_server(backend_uri: str, artifacts_uri: str, s3: S3) -> Iterator[str]:
    """`mlflow server` with `backend_uri` as its store and `artifacts_uri` behind its artifact proxy; yields its
    tracking URI (http://127.0.0.1:PORT)."""
    port = free_port()
    base = Path(tempfile.mkdtemp(prefix="raykd-mlflow-"))
    try:
        log = base / "mlflow.log"
        cmd = [str(Path(sys.executable).with_name("mlflow")), "server", "--host", HOST, "--port", str(port),
               "--backend-store-uri", backend_uri, "--artifacts-destination", artifacts_uri, "--serve-artifacts",
               "--workers", "1"]
        with _process(cmd, log, env={**os.environ, **s3.env()}) as proc:
            uri = f"http://{HOST}:{port}"
            wait_until(lambda: _http_ok(f"{uri}/health"), "mlflow server", proc, log, timeout=120)
            yield uri
    finally:
        shutil.rmtree(base, ignore_errors=True)
