"""Serving under load, measured with a real HTTP load generator (wrk) against the `raykd serve` application.

    .venv/bin/python -m bench.serve_load --student moe=DIR [--student lstm=DIR] --teacher DIR --output runs/serve_load

1. sweep: one-response and 64-response requests at 1, 4, 16, 32, 64 and 256 connections, students and the teacher
   behind the same Serve ingress (HAProxy) on 127.0.0.1; requests/s, responses/s, p50/p99 latency, failures
   (time-outs, socket errors, 5xx other than 503) and 503s (overload, answered at once) apart; every level is
   measured twice, in an ascending and then a descending pass, and reported over both
2. where one request's time goes: the replica's Server-Timing (batch queue, model, app) against the
   client's total at one connection; the rest is HTTP, the proxy and routing
3. faults: a two-replica copy of the first student under 64 connections, one replica process SIGKILLed 10 s in: failed
   requests and the seconds until throughput is back at its level before the kill
4. offline: `raykd predict --stream on` on 1,000,000 responses, per student: responses/s (wall clock, Ray start-up
   included) and peak memory (PSS summed over the command's process tree, Ray's processes included)
Results: serve_load.json (typed: `LoadReport`), serve_load.md and serve_load.png in --output. wrk comes from
Debian (`apt-get install wrk`); only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import requests

from bench.load_report import (
    SHAPES,
    WARMUP_S,
    Breakdown,
    FaultRun,
    LoadPoint,
    LoadReport,
    StreamPredict,
    markdown,
    plot,
)

LUA = Path(__file__).resolve().parent / "wrk_post.lua"
CONNECTIONS = (1, 4, 16, 32, 64, 256)


# ------------------------------------------------------------------------------------------------ clients
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_bodies(items: list[dict[str, str]], per_request: int, path: Path, count: int = 200) -> Path:
    """`count` request bodies of `per_request` responses each, one JSON document per line."""
    lines = []
    for k in range(count):
        chunk = [items[(k * per_request + j) % len(items)] for j in range(per_request)]
        lines.append(json.dumps(chunk[0] if per_request == 1 else {"responses": chunk}))
    path.write_text("\n".join(lines) + "\n")
    return path


def wrk(base: str, route: str, bodies: Path, connections: int, seconds: float, timeout_s: float) -> dict[str, Any]:
    env = {**os.environ, "RAYKD_WRK_BODIES": str(bodies), "RAYKD_WRK_PATH": f"{route}/v1/score"}
    cmd = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", f"{timeout_s:g}s",
           "-s", str(LUA), base]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 120)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RAYKD_WRK ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary: {out.stdout[-500:]} {out.stderr[-500:]}")
    return json.loads(line.removeprefix("RAYKD_WRK "))


def load_point(raws: list[dict[str, Any]], model: str, shape: str, connections: int) -> LoadPoint:
    """One level from its wrk runs (the sweep's passes): counts and rates over all of them, and the larger
    p50 and p99 of the passes (wrk reports percentiles, not the samples to pool)."""
    statuses: dict[str, int] = {}
    for raw in raws:
        for k, v in raw["statuses"].items():
            statuses[str(k)] = statuses.get(str(k), 0) + int(v)
    ok = sum(v for k, v in statuses.items() if k.startswith("2"))
    overload = statuses.get("503", 0)
    errors = {k: sum(raw["errors"][k] for raw in raws) for k in ("connect", "read", "write", "timeout")}
    seconds = sum(raw["duration_us"] for raw in raws) / 1e6
    return LoadPoint(model=model, shape=shape, connections=connections, seconds=seconds,
                     requests_per_s=ok / seconds, responses_per_s=ok * SHAPES[shape] / seconds,
                     p50_ms=max(raw["latency_us"]["p50"] for raw in raws) / 1000,
                     p99_ms=max(raw["latency_us"]["p99"] for raw in raws) / 1000, ok=ok, overload_503=overload,
                     failed=sum(statuses.values()) - ok - overload + sum(errors.values()),
                     timeouts=errors["timeout"], statuses=statuses, passes=len(raws))


def breakdown(url: str, bodies: list[str], model: str, shape: str, n: int = 150) -> Breakdown:
    """Sequential requests (one connection) with the replica's Server-Timing beside the client's clock."""
    session = requests.Session()
    parts: dict[str, list[float]] = {"total": [], "app": [], "queue": [], "model": []}
    for k in range(n + 10):
        t0 = time.perf_counter()
        r = session.post(f"{url}/v1/score", data=bodies[k % len(bodies)],
                         headers={"content-type": "application/json"}, timeout=120)
        total = (time.perf_counter() - t0) * 1000
        r.raise_for_status()
        if k < 10:  # warm-up
            continue
        timing = dict(item.strip().split(";dur=") for item in r.headers["server-timing"].split(","))
        parts["total"].append(total)
        for key in ("app", "queue", "model"):
            parts[key].append(float(timing[key]))
    med = {k: statistics.median(v) for k, v in parts.items()}
    return Breakdown(model=model, shape=shape, total_ms=med["total"], app_ms=med["app"], queue_ms=med["queue"],
                     model_ms=med["model"], outside_ms=med["total"] - med["app"])


# ----------------------------------------------------------------------------------------------- servers
def deploy(students: dict[str, str], teacher: str, port: int) -> tuple[str, dict[str, Any]]:
    """Each student and the teacher as applications behind one proxy (`/<name>`, `/teacher`); returns the base
    URL and the students' config."""
    from ray import serve

    from raykd.serve.config import ServeConfig
    from raykd.serve.launch import build_app, run_serve

    url, cfg = "", {}
    for name, path in students.items():
        scfg = ServeConfig(model=path, port=port, poll_interval_s=0, num_cpus_per_replica=0.5, app_name=name,
                           route_prefix=f"/{name}")
        if not url:
            url, cfg = run_serve(scfg, blocking=False).rsplit(f"/{name}", 1)[0], asdict(scfg)
        else:
            serve.run(build_app(scfg), name=name, route_prefix=f"/{name}")
    # The teacher needs seconds for a batch of 64 responses: its replica takes fewer requests at once.
    teacher_cfg = ServeConfig(model=teacher, poll_interval_s=0, num_cpus_per_replica=0.5, max_batch_size=64,
                              max_ongoing_requests=64)
    serve.run(build_app(teacher_cfg), name="teacher", route_prefix="/teacher")
    return url, cfg


def replica_pids(app: str) -> list[int]:
    from ray.util.state import list_actors

    actors = list_actors(filters=[("state", "=", "ALIVE")], limit=1000)
    return [a.pid for a in actors if a.class_name == f"ServeReplica:{app}:scorer"]


def fault_run(base: str, student: str, bodies: Path, connections: int = 64, seconds: float = 40,
              kill_after: float = 10, timeout_s: float = 10) -> FaultRun:
    from ray import serve

    from raykd.serve.config import ServeConfig
    from raykd.serve.launch import build_app

    serve.run(build_app(ServeConfig(model=student, poll_interval_s=0, num_replicas=2, num_cpus_per_replica=0.5)),
              name="student2", route_prefix="/student2")
    pids = replica_pids("student2")
    if len(pids) != 2:
        raise RuntimeError(f"expected 2 replicas of student2, found {pids}")
    requests.post(f"{base}/student2/v1/score", data=bodies.read_text().splitlines()[0], timeout=60).raise_for_status()
    result: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: result.update(wrk(base, "/student2", bodies, connections, seconds,
                                                               timeout_s)))
    start = time.time()
    runner.start()
    time.sleep(kill_after)
    killed_at = time.time()
    os.kill(pids[0], signal.SIGKILL)
    print(f"[serve-load] killed replica pid {pids[0]} at {killed_at - start:.1f}s", flush=True)
    runner.join()
    serve.delete("student2")
    first = int(start)
    ok = {int(k) - first: v for k, v in result["ok_at"].items()}
    bad = {int(k) - first: v for k, v in result["bad_at"].items()}
    span = range(0, max([*ok, *bad, 0]) + 1)
    timeline = [{"second": s, "ok": ok.get(s, 0), "failed": bad.get(s, 0)} for s in span]
    kill_s = int(killed_at) - first
    before = [ok.get(s, 0) for s in range(2, kill_s)]
    baseline = statistics.mean(before) if before else 0.0
    recovery = next((s - (killed_at - start) for s in span if s > kill_s and ok.get(s, 0) >= 0.9 * baseline
                     and all(ok.get(t, 0) >= 0.9 * baseline for t in range(s, min(s + 3, span[-1])))), None)
    point = load_point([result], "student", "single", connections)
    total = point.ok + point.overload_503 + point.failed
    failed = point.failed + point.overload_503
    return FaultRun(connections=connections, seconds=seconds, killed_at_s=killed_at - start, requests=total,
                    failed=failed, failed_fraction=failed / max(1, total), baseline_per_s=baseline,
                    recovery_s=None if recovery is None else max(0.0, recovery), timeline=timeline)


# ------------------------------------------------------------------------------------------------ predict
def big_input(items: list[dict[str, str]], n: int, path: Path) -> Path:
    """`n` responses (the test responses repeated under new ids) as id, task, text CSV."""
    import pandas as pd

    frame = pd.DataFrame(items)
    reps = -(-n // len(frame))
    big = pd.concat([frame] * reps, ignore_index=True).head(n)
    big.insert(0, "id", [f"r{i}" for i in range(n)])
    big.to_csv(path, index=False)
    return path


def tree_pss(pid: int) -> float:
    """Proportional set size (bytes) summed over a process and all its descendants: shared memory (Ray's
    object store, shared libraries) counted once, split among the processes that map it."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += p.memory_full_info().pss
    return total


def stream_predict(name: str, model: str, items: list[dict[str, str]], n: int, work: Path) -> StreamPredict:
    path = big_input(items, n, work / f"{name}_responses_{n}.csv")
    out = work / f"{name}_scored_{n}.parquet"
    cmd = [sys.executable, "-m", "raykd.cli", "predict", "--model", model, "--input", str(path), "--output",
           str(out), "--stream", "on"]
    env = {**os.environ, "RAY_ADDRESS": ""}  # its own local Ray, so its memory is all in its process tree
    env.pop("RAY_ADDRESS")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, tree_pss(proc.pid))
        time.sleep(0.5)
    seconds = time.perf_counter() - t0
    log = proc.stdout.read() if proc.stdout else ""
    if proc.returncode != 0:
        raise RuntimeError(f"raykd predict failed: {log[-2000:]}")
    import pyarrow.parquet as pq

    rows = pq.ParquetFile(out).metadata.num_rows
    print(f"[serve-load] predict {rows:,} responses in {seconds:.1f}s; peak PSS {peak / 2**30:.2f} GiB", flush=True)
    return StreamPredict(responses=rows, seconds=seconds, responses_per_s=rows / seconds,
                         peak_memory_gb=peak / 2**30, model=name)


# ---------------------------------------------------------------------------------------------------- main
def run(students: dict[str, str], teacher: str, out: Path, seconds: float = 10,
        connections: tuple[int, ...] = CONNECTIONS, timeout_s: float = 10, predict_n: int = 1_000_000,
        fault: bool = True, command: str = "") -> LoadReport:
    """The whole benchmark for `students` (name -> model folder) and the teacher; writes serve_load.json/.md/.png."""
    from ray import serve

    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="raykd-load-"))
    base, cfg = deploy(students, teacher, free_port())
    models = {**students, "teacher": teacher}
    items = {name: test_items(path) for name, path in models.items()}
    bodies = {(name, shape): write_bodies(items[name], n, work / f"{name}-{shape}.jsonl")
              for name in models for shape, n in SHAPES.items()}
    report = LoadReport(machine={"cpus": os.cpu_count()}, wrk_timeout_s=timeout_s, serve_config=cfg)
    for name in models:
        for shape in SHAPES:
            lines = bodies[name, shape].read_text().splitlines()
            report.breakdown.append(breakdown(f"{base}/{name}", lines, name, shape,
                                              n=20 if name == "teacher" else 150))
            print(f"[serve-load] {report.breakdown[-1]}", flush=True)
    for name in models:
        for shape in SHAPES:
            # Two passes, ascending then descending: a drift over the minutes of a sweep (a warming cache, a
            # growing log) then weighs on every level alike instead of looking like an effect of concurrency.
            raws: dict[int, list[dict[str, Any]]] = {c: [] for c in connections}
            for c in [*connections, *reversed(connections)]:
                # Warm-up at this concurrency (not counted): HAProxy opens its backend connections for the new
                # clients, which costs seconds at 256 connections and would otherwise land in the tail.
                wrk(base, f"/{name}", bodies[name, shape], c, WARMUP_S, timeout_s)
                raws[c].append(wrk(base, f"/{name}", bodies[name, shape], c, seconds, timeout_s))
            for c in connections:
                report.sweep.append(load_point(raws[c], name, shape, c))
                p = report.sweep[-1]
                print(f"[serve-load] {name} {shape} c={c}: {p.requests_per_s:.1f} req/s {p.responses_per_s:.0f} "
                      f"resp/s p50 {p.p50_ms:.1f} ms p99 {p.p99_ms:.1f} ms 503 {p.overload_503} failed {p.failed} "
                      f"(passes: {' / '.join(f'{load_point([r], name, shape, c).requests_per_s:.0f}' for r in raws[c])}"
                      " req/s)", flush=True)
    first = next(iter(students))
    if fault:
        for name in models:  # the fault run's two replicas get the machine to themselves
            serve.delete(name)
        report.fault = fault_run(base, students[first], bodies[first, "single"], timeout_s=timeout_s)
        print(f"[serve-load] fault: {report.fault.failed}/{report.fault.requests} failed, recovery "
              f"{report.fault.recovery_s}", flush=True)
    serve.shutdown()
    for name, path in students.items():
        if predict_n:
            report.predict.append(stream_predict(name, path, items[name], predict_n, work))
    (out / "serve_load.json").write_text(json.dumps(asdict(report), indent=2))
    (out / "serve_load.md").write_text(markdown(report, command) + "\n")
    plot(report, out / "serve_load.png")
    return report


def test_items(model: str) -> list[dict[str, str]]:
    """The held-back ASAP-SAS test responses of the tasks `model` serves, as request items."""
    from raykd.data import data_dir, make_splits, read_asap
    from raykd.scoring import load_scorer

    tasks = load_scorer(model).layout.names
    sets = [int(t.split("_")[1]) for t in tasks if t.startswith("asap_")]
    ds = make_splits(read_asap(data_dir() / "asap_sas", sets=sets))
    test = ds.frame[ds.frame["split"] == "test"]
    return [{"task": t, "text": x} for t, x in zip(test["task"], test["text"], strict=True)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", action="append", required=True, metavar="NAME=DIR",
                        help="a student model folder to serve (repeatable); the first one also runs the fault and "
                             "predict measurements")
    parser.add_argument("--teacher", required=True, help="teacher model folder")
    parser.add_argument("--output", default="runs/serve_load")
    parser.add_argument("--seconds", type=float, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", default=",".join(map(str, CONNECTIONS)))
    parser.add_argument("--predict-responses", type=int, default=1_000_000, help="0 skips the predict runs")
    parser.add_argument("--no-fault", action="store_true", help="skip the replica-kill run")
    args = parser.parse_args()
    from shutil import which

    if which("wrk") is None:
        parser.error("wrk is not installed (apt-get install wrk)")
    students = {}
    for item in args.student:
        name, sep, path = item.partition("=")
        if not sep or not Path(path).is_dir() or name == "teacher":
            parser.error(f"--student {item}: expected NAME=DIR with an existing model folder (NAME not 'teacher')")
        students[name] = path
    from raykd.runtime import ensure_ray

    ensure_ray()
    command = " ".join(["bench/serve_load.py", *sys.argv[1:]])
    report = run(students, args.teacher, Path(args.output), args.seconds,
                 tuple(int(c) for c in args.connections.split(",")), predict_n=args.predict_responses,
                 fault=not args.no_fault, command=command)
    print(markdown(report, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
