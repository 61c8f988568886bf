"""Serve benchmark: a student and the teacher behind the same Ray Serve endpoint, measured in one run.

    .venv/bin/python bench/serve_bench.py --student runs/tune_asap1/champion --teacher runs/teacher_asap_science/model

Single-response requests/s with p50/p99 latency (several concurrent clients, one response per request),
and batch scoring responses/s (requests of --batch responses). Only 127.0.0.1 is contacted; every loop is
bounded in time.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def single_requests(url: str, items: list[dict[str, str]], seconds: float, clients: int) -> dict[str, float]:
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client(offset: int) -> None:
        session = requests.Session()
        i = offset
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            r = session.post(f"{url}/v1/score", json=items[i % len(items)], timeout=60)
            r.raise_for_status()
            with lock:
                latencies.append(time.perf_counter() - t0)
            i += clients

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    lat = np.asarray(latencies) * 1000
    return {"requests_per_s": len(lat) / elapsed, "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99)), "requests": len(lat), "clients": clients}


def batch_scoring(url: str, items: list[dict[str, str]], batch: int, seconds: float) -> dict[str, float]:
    session = requests.Session()
    done, t0 = 0, time.perf_counter()
    i = 0
    while time.perf_counter() - t0 < seconds:
        chunk = [items[(i + k) % len(items)] for k in range(batch)]
        session.post(f"{url}/v1/score", json={"responses": chunk}, timeout=300).raise_for_status()
        done += batch
        i += batch
    return {"responses_per_s": done / (time.perf_counter() - t0), "batch": batch}


def run(student: str, teacher: str, items: list[dict[str, str]], seconds: float = 15, clients: int = 4,
        batch: int = 64) -> dict[str, Any]:
    from ray import serve

    from raykd.config import ServeConfig
    from raykd.serve.app import build_app, run_serve

    port = free_port()
    base = run_serve(ServeConfig(model=student, port=port, poll_interval_s=0, num_cpus_per_replica=1,
                                 app_name="student", route_prefix="/student"), blocking=False)
    serve.run(build_app(ServeConfig(model=teacher, poll_interval_s=0, num_cpus_per_replica=1)), name="teacher",
              route_prefix="/teacher")
    root = base.rsplit("/student", 1)[0]
    out: dict[str, Any] = {}
    for name in ("student", "teacher"):
        url = f"{root}/{name}"
        requests.post(f"{url}/v1/score", json=items[0], timeout=120).raise_for_status()  # warm up
        out[name] = {"single": single_requests(url, items, seconds, clients),
                     "batch": batch_scoring(url, items, batch, seconds)}
        print(f"[serve-bench] {name}: {json.dumps(out[name])}", flush=True)
    serve.shutdown()
    st, te = out["student"], out["teacher"]
    out["ratios"] = {
        "single_requests_per_s": st["single"]["requests_per_s"] / te["single"]["requests_per_s"],
        "batch_responses_per_s": st["batch"]["responses_per_s"] / te["batch"]["responses_per_s"],
    }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--student", required=True)
    parser.add_argument("--teacher", required=True)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--output", help="write the results as JSON here")
    args = parser.parse_args()
    from raykd.data import data_dir, make_splits, read_asap
    from raykd.scoring import load_scorer
    from raykd.teacher.job import ensure_ray

    tasks = load_scorer(args.student).layout.names
    sets = [int(t.split("_")[1]) for t in tasks if t.startswith("asap_")]
    ds = make_splits(read_asap(data_dir() / "asap_sas", sets=sets))
    test = ds.frame[ds.frame["split"] == "test"]
    items = [{"task": t, "text": x} for t, x in zip(test["task"], test["text"], strict=True)]
    ensure_ray()
    result = run(args.student, args.teacher, items, args.seconds, args.clients, args.batch)
    print(json.dumps(result, indent=2))
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
