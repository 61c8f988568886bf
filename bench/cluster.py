"""The pipeline as the cluster runs it (issue 31), against the same pipeline on one node, in one command:

    .venv/bin/python -m bench.cluster --workdir runs/bench_cluster

1. single node: local Ray, MLflow on SQLite, plain folders (what `raykd quickstart` runs);
2. the cluster: PostgreSQL, the S3 stand-in (moto in server mode: no real object store can be reached here) and
   `mlflow server` over both (bench/services.py), and a Ray cluster of a head and a worker node on 127.0.0.1,
   each started with `ray start` in its own temp folder and with its own storage cache, token authentication on.
   The driver runs on the head; every stage keeps its outputs on the object store (`s3://raykd/runs/...`): Ray
   Train's and Tune's checkpoints, the soft labels, the prepared splits and the model folders. The teacher's
   Train workers need the `trainer` resource only the worker node has, and one of them is SIGKILLed in epoch 2;
   training resumes from the checkpoint on the object store.

Both runs: teacher (MiniLM, Ray Train + DeepSpeed ZeRO-2, 2 workers) -> soft labels (Ray Data) -> distill (LSTM
and MoE, KD and no-KD) -> Tune (3-fold CV, champion registered) -> Ray Serve -> the test responses scored over
HTTP and by `raykd predict` on the registered champion. The report (report.md, figures.json) sets the cluster's
figures beside the single node's and lists what was checked on the cluster: the kill and the resume, every rank's
checkpoint files in the bucket, the worker node reading the teacher's model from the object store, MLflow's runs in
PostgreSQL and its artifacts in the bucket, served = predicted, and no process left behind.

`--stage single|cluster` runs one side's pipeline in this process (what the orchestrator starts, with the
environment of that side).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.services import HOST, _process, free_port, mlflow_server, postgres, s3_standin, wait_until

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "raykd"
MODEL = "cluster-asap1"
TRAINER = "trainer"  # the custom resource only the worker node offers: the teacher's Train workers land there
KILL = {"rank": 1, "epoch": 1, "step": 2}  # SIGKILL rank 1 at the second step of epoch 2 (epoch 1 checkpointed)
# The quickstart's configs, smaller: the first 400 labelled responses per split, fewer student epochs, Tune's grid.
TEACHER = ["data.limit_per_task=400", "train.epochs=2"]
DISTILL = ["distill.epochs=6"]
TUNE = ["distill.epochs=5", f"register_as={MODEL}"]


@dataclass
class Figures:
    """One side's results, compared across the two runs."""

    mode: str
    seconds: float
    teacher_val: dict[str, float]
    teacher_test: float
    teacher_epochs: list[int]  # the epochs MLflow recorded, once each after a resume
    students: dict[str, float]  # family-variant -> test score
    champion: str
    champion_test: float
    served_equal: float  # share of test responses whose HTTP and `raykd predict` predictions are identical
    responses: int
    checks: dict[str, str] = field(default_factory=dict)  # cluster only: what was verified, in words


# --------------------------------------------------------------------------------------------- one side
def run_side(mode: str, work: Path, storage_root: str, tracking: str) -> Figures:
    """teacher -> soft labels -> distill -> tune -> registry -> serve -> HTTP vs predict, in this process."""
    import mlflow
    import pandas as pd
    from ray import serve

    from raykd.distill.config import DistillJobConfig
    from raykd.distill.job import run_distill
    from raykd.quickstart import _config, _free_port, _score_both_ways
    from raykd.serve.config import ServeConfig
    from raykd.serve.launch import run_serve
    from raykd.storage import join
    from raykd.teacher.config import TeacherJobConfig
    from raykd.teacher.job import run_teacher
    from raykd.teacher.train import KillPoint
    from raykd.tune.config import TuneJobConfig
    from raykd.tune.job import run_tune

    cluster = mode == "cluster"
    t0 = time.time()
    teacher_cfg = _config("teacher", TeacherJobConfig, [*TEACHER, f"output_dir={join(storage_root, 'teacher')}",
                                                        *([f"scaling.resources_per_worker={{{TRAINER}: 1}}"]
                                                          if cluster else [])])
    teacher = run_teacher(teacher_cfg, tracking_uri=tracking, kill_worker=KillPoint(**KILL) if cluster else None)
    distill_cfg = _config("distill", DistillJobConfig, [*DISTILL, f"output_dir={join(storage_root, 'distill')}",
                                                         f"teacher={teacher.output_dir}"])
    distilled = run_distill(distill_cfg, tracking_uri=tracking)
    tune_cfg = _config("tune", TuneJobConfig, [*TUNE, f"output_dir={join(storage_root, 'tune')}",
                                               f"teacher={teacher.output_dir}"])
    tuned = run_tune(tune_cfg, tracking_uri=tracking)
    champion = f"models:/{MODEL}@champion"
    serve_cfg = _config("serve", ServeConfig, [f"tracking_uri={tracking}", f"model={champion}",
                                               f"proxy_location={'HeadOnly' if cluster else 'EveryNode'}"])
    serve_cfg.port = _free_port(serve_cfg.port)
    url = run_serve(serve_cfg, blocking=False)
    try:
        mlflow.set_tracking_uri(tracking)
        same, metrics = _score_both_ways(work, teacher.output_dir, url, champion)
    finally:
        serve.shutdown()
    history = mlflow.tracking.MlflowClient(tracking).get_metric_history(teacher.run_id, "epoch")
    return Figures(mode, time.time() - t0,
                   {k: v for k, v in teacher.metrics.items() if k.startswith("validation/")},
                   teacher.splits["test"].score, [m.step for m in history],
                   {f"{s.group}-{s.variant}": s.test.score for s in distilled.students},
                   f"{tuned.winner.params.get('student.arch', '?')} kd_weight "
                   f"{tuned.winner.params.get('distill.kd_weight', '?')}", tuned.test.score, same,
                   len(pd.read_csv(work / "test_responses.csv")))


def cluster_checks(s3_env: dict[str, str], storage_root: str, tracking: str, caches: dict[str, Path]
                   ) -> dict[str, str]:
    """What the cluster run must have done, checked where it left its traces (raises on the first miss)."""
    import boto3

    client = boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL_S3"], region_name=s3_env["AWS_DEFAULT_REGION"],
                          aws_access_key_id=s3_env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=s3_env["AWS_SECRET_ACCESS_KEY"])
    keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
            for o in page.get("Contents", [])]
    prefix = storage_root.removeprefix(f"s3://{BUCKET}/")
    checks = {}

    def need(name: str, ok: bool, detail: str) -> None:
        if not ok:
            raise RuntimeError(f"cluster check failed: {name}: {detail}")
        checks[name] = detail

    killed = [k for k in keys if k == f"{prefix}/teacher/.worker_killed"]
    need("worker killed", bool(killed), "rank 1 SIGKILLed in epoch 2 (marker in the bucket)")
    shards = sorted({k.rsplit("/", 1)[1] for k in keys if "/teacher/ray_results/" in k and "optim_states" in k})
    need("every rank's checkpoint shard in the bucket", len(shards) >= 2, ", ".join(shards))
    for stage, names in (("teacher", ("teacher_result.json", "soft_labels.parquet", "splits.parquet",
                                      "model/raykd_model.json")),
                         ("distill", ("distill_result.json",)), ("tune", ("tune_result.json",
                                                                         "champion/raykd_model.json"))):
        missing = [n for n in names if f"{prefix}/{stage}/{n}" not in keys]
        need(f"{stage} outputs in the bucket", not missing, f"{', '.join(names)}" if not missing else
             f"missing {missing}")
    tune_ckpts = [k for k in keys if f"{prefix}/tune/ray_tune/" in k and k.endswith("raykd_model.json")]
    need("Tune trials' checkpoints in the bucket", bool(tune_ckpts), f"{len(tune_ckpts)} trial students")
    mlflow_keys = [k for k in keys if k.startswith("mlflow/")]
    need("MLflow artifacts in the bucket", bool(mlflow_keys), f"{len(mlflow_keys)} objects under mlflow/")
    # a folder fetched whole (the teacher stage's, on the driver) or its model folder alone (a Ray worker's)
    patterns = ("fetched/*/raykd_model.json", "fetched/*/model/raykd_model.json")
    fetched = {node: sorted(p.relative_to(cache / "fetched").parts[0] for pattern in patterns
                            for p in cache.glob(pattern)) for node, cache in caches.items()}
    need("the worker node read the teacher's model from the object store", bool(fetched.get("worker")),
         f"model folders in each node's cache: {fetched}")
    return checks


def side_main(args: argparse.Namespace) -> int:
    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    storage_root = args.storage or str(work / "runs")
    tracking = args.tracking_uri or f"sqlite:///{work / 'mlflow.db'}"
    figures = run_side(args.stage, work, storage_root, tracking)
    (work / "figures.json").write_text(json.dumps(dataclasses.asdict(figures), indent=2))
    return 0


# --------------------------------------------------------------------------------------------- the cluster
def ray_processes(marker: str) -> list[int]:
    """Processes whose command line names `marker` (a node's temp folder): what a node left running."""
    import psutil

    found = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any(marker in part for part in p.info["cmdline"] or []):
                found.append(p.info["pid"])
    return found


def stop_processes(pids: list[int], grace: float = 10.0) -> None:
    import psutil

    procs = [psutil.Process(pid) for pid in pids if psutil.pid_exists(pid)]
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()


@dataclass
class RayCluster:
    address: str
    env: dict[str, str]  # what the driver needs to join (address and token)
    caches: dict[str, Path]  # each node's storage cache (RAYKD_STORAGE_CACHE)
    temp_dirs: dict[str, Path]


@contextlib.contextmanager
def ray_cluster(base: Path, env: dict[str, str]) -> Iterator[RayCluster]:
    """A head node (2 CPUs) and a worker node (3 CPUs, the TRAINER resource) started with `ray start --block`,
    each in its own temp folder, token authentication on with a fresh token; everything they started is
    stopped on exit."""
    from raykd.runtime import serve_environment

    ray_bin = str(Path(sys.executable).with_name("ray"))
    token = base / "ray_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    port = free_port()
    address = f"{HOST}:{port}"
    common = {**env, **serve_environment(), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    temp = {node: Path(f"/tmp/rk-{node}-{secrets.token_hex(3)}") for node in ("head", "worker")}  # short: socket paths
    caches = {node: base / f"cache-{node}" for node in ("head", "worker", "driver")}
    nodes = {
        "head": [ray_bin, "start", "--head", "--block", f"--node-ip-address={HOST}", f"--port={port}",
                 "--num-cpus=2", "--include-dashboard=false", f"--temp-dir={temp['head']}",
                 f"--ray-client-server-port={free_port()}", "--disable-usage-stats"],
        "worker": [ray_bin, "start", "--block", f"--address={address}", f"--node-ip-address={HOST}",
                   "--num-cpus=3", f"--resources={json.dumps({TRAINER: 2})}", f"--temp-dir={temp['worker']}",
                   "--disable-usage-stats"],
    }
    with contextlib.ExitStack() as stack:
        try:
            procs = {}
            for node, cmd in nodes.items():
                node_env = {**common, "RAYKD_STORAGE_CACHE": str(caches[node])}
                procs[node] = stack.enter_context(_process(cmd, base / f"ray-{node}.log", env=node_env))
                if node == "head":
                    wait_until(lambda: _gcs_up(port), "ray head", procs[node], base / "ray-head.log", timeout=90)
            driver_env = {**common, "RAY_ADDRESS": address, "RAYKD_STORAGE_CACHE": str(caches["driver"])}
            _wait_for_nodes(driver_env, 2, procs["worker"], base / "ray-worker.log")
            yield RayCluster(address, driver_env, caches, temp)
        finally:
            stack.close()  # ray start's own process groups first, then whatever they spawned in new sessions
            for folder in temp.values():
                stop_processes(ray_processes(str(folder)))
                subprocess.run(["rm", "-rf", str(folder)], check=False)


def _gcs_up(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex((HOST, port)) == 0


def _wait_for_nodes(env: dict[str, str], count: int, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    probe = ("import ray; ray.init(); print(sum(1 for n in ray.nodes() if n['Alive']))")

    def ready() -> bool:
        out = subprocess.run([sys.executable, "-c", probe], env={**os.environ, **env}, capture_output=True,
                             text=True, timeout=60)
        return out.returncode == 0 and out.stdout.strip().splitlines()[-1] == str(count)

    wait_until(ready, f"{count} Ray nodes", proc, log, timeout=timeout)


def run_child(stage: str, work: Path, env: dict[str, str], extra: list[str], log: Path) -> Figures:
    """One side's pipeline in a child process (its own Ray driver); its output to `log` and the terminal."""
    cmd = [sys.executable, "-m", "bench.cluster", "--stage", stage, "--workdir", str(work), *extra]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:  # type: ignore[union-attr]
            out.write(line)
            sys.stdout.write(f"[{stage}] {line}" if not line.startswith("[") else line)
        if proc.wait() != 0:
            raise RuntimeError(f"the {stage} run failed (exit {proc.returncode}); see {log}")
    return Figures(**json.loads((work / "figures.json").read_text()))


def local_env() -> dict[str, str]:
    """This environment without a cluster address or object-store settings: the single-node side."""
    drop = ("RAY_ADDRESS", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL_S3",
            "MLFLOW_S3_ENDPOINT_URL", "RAYKD_STORAGE_CACHE")
    return {k: v for k, v in os.environ.items() if k not in drop}


def compare(single: Figures, cluster: Figures, tolerance: float) -> list[tuple[str, float, float, bool]]:
    """(figure, single, cluster, within tolerance) for each figure both sides report."""
    rows = [("teacher test QWK", single.teacher_test, cluster.teacher_test)]
    rows += [(f"teacher {k}", v, cluster.teacher_val.get(k, float("nan"))) for k, v in single.teacher_val.items()
             if k.endswith("/qwk")]
    rows += [(f"student {k} test", v, cluster.students.get(k, float("nan"))) for k, v in single.students.items()]
    rows += [("champion test", single.champion_test, cluster.champion_test),
             ("served = predicted", single.served_equal, cluster.served_equal)]
    return [(name, a, b, abs(a - b) <= tolerance) for name, a, b in rows]


def report(path: Path, single: Figures, cluster: Figures, rows: list, leftovers: list[int], seconds: float,
           tolerance: float) -> str:
    lines = ["# The pipeline on a 2-node Ray cluster with PostgreSQL, S3 (moto stand-in) and `mlflow server`, "
             "beside one node", "",
             f"Whole command {seconds / 60:.1f} min; single node {single.seconds:.0f} s, cluster "
             f"{cluster.seconds:.0f} s "
             f"({cluster.seconds / single.seconds:.2f}x, including the killed worker's restart). "
             f"{single.responses} test responses. Tolerance {tolerance}.", "",
             "| figure | single node | cluster | within tolerance |", "|---|---|---|---|"]
    lines += [f"| {n} | {a:.4f} | {b:.4f} | {'yes' if ok else 'NO'} |" for n, a, b, ok in rows]
    lines += ["", f"Champion: single node {single.champion}; cluster {cluster.champion}.",
              f"Teacher epochs MLflow recorded: single {single.teacher_epochs}, cluster {cluster.teacher_epochs} "
              "(once each: the restarted worker went on from the last checkpoint).", "",
              "## Checked on the cluster", ""]
    lines += [f"- {k}: {v}" for k, v in cluster.checks.items()]
    lines += [f"- no process left behind: {'yes' if not leftovers else f'NO ({leftovers})'}"]
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="runs/bench_cluster")
    parser.add_argument("--tolerance", type=float, default=0.02, help="largest difference that counts as noise")
    parser.add_argument("--skip-single", action="store_true", help="reuse the single-node figures already there")
    parser.add_argument("--stage", choices=["single", "cluster"], help=argparse.SUPPRESS)
    parser.add_argument("--storage", help=argparse.SUPPRESS)
    parser.add_argument("--tracking-uri", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        return side_main(args)
    t0 = time.time()
    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    if args.skip_single and (work / "single" / "figures.json").is_file():
        single = Figures(**json.loads((work / "single" / "figures.json").read_text()))
    else:
        print("=== single node: local Ray, SQLite, plain folders ===", flush=True)
        single = run_child("single", work / "single", local_env(), [], work / "single.log")
    print("=== cluster: PostgreSQL, S3 stand-in, mlflow server, Ray head + worker node ===", flush=True)
    base = work / "cluster_services"
    base.mkdir(exist_ok=True)
    storage_root = f"s3://{BUCKET}/runs"
    temp_dirs: dict[str, Path] = {}
    with postgres() as db, s3_standin(BUCKET) as s3, \
            mlflow_server(db.url, s3.bucket_uri("mlflow"), s3) as tracking:
        env = {**local_env(), **s3.env()}
        with ray_cluster(base, env) as cluster:
            temp_dirs = cluster.temp_dirs
            cluster_figures = run_child("cluster", work / "cluster", {**env, **cluster.env},
                                        ["--storage", storage_root, "--tracking-uri", tracking], work / "cluster.log")
            cluster_figures.checks = cluster_checks(s3.env(), storage_root, tracking, cluster.caches)
            runs = _count_runs(db)
            cluster_figures.checks["MLflow runs in PostgreSQL"] = f"{runs} runs, registered model {MODEL}"
    time.sleep(2)
    leftovers = [pid for folder in temp_dirs.values() for pid in ray_processes(str(folder))]
    rows = compare(single, cluster_figures, args.tolerance)
    text = report(work / "report.md", single, cluster_figures, rows, leftovers, time.time() - t0, args.tolerance)
    (work / "figures.json").write_text(json.dumps({"single": dataclasses.asdict(single),
                                                   "cluster": dataclasses.asdict(cluster_figures),
                                                   "leftovers": leftovers}, indent=2))
    print(text)
    return 0 if all(ok for *_, ok in rows) and not leftovers else 1


def _count_runs(db: object) -> int:
    import psycopg2

    with psycopg2.connect(host=HOST, port=db.port, user=db.user, password=db.password,  # type: ignore[attr-defined]
                          dbname=db.database) as conn, conn.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute("SELECT count(*) FROM runs")
        return int(cur.fetchone()[0])


if __name__ == "__main__":
    sys.exit(main())
