"""The load benchmark's pooling of its passes over each concurrency level (bench/serve_load.py)."""

import pytest


@pytest.fixture(scope="module")
def serve_load():
    from bench import serve_load

    return serve_load


def wrk_run(ok: int, busy: int, seconds: float, p50_us: int, p99_us: int, timeouts: int = 0) -> dict:
    """What wrk_post.lua prints for one run."""
    return {"statuses": {"200": ok, "503": busy}, "duration_us": int(seconds * 1e6),
            "errors": {"connect": 0, "read": 1, "write": 0, "timeout": timeouts},
            "latency_us": {"p50": p50_us, "p99": p99_us}}


def test_passes_pool_counts_and_keep_the_worse_percentiles(serve_load):
    point = serve_load.load_point([wrk_run(1000, 0, 10, 4000, 9000), wrk_run(3000, 5, 10, 6000, 7000, timeouts=2)],
                                  "lstm", "batch64", 16)
    assert point.passes == 2 and point.seconds == 20
    assert point.requests_per_s == 200 and point.responses_per_s == 200 * 64  # 4,000 ok over 20 s
    assert (point.p50_ms, point.p99_ms) == (6.0, 9.0)
    assert point.overload_503 == 5 and point.timeouts == 2
    assert point.failed == 2 + 2  # a read error per run, and the time-outs; 503s are counted apart


def test_one_pass_reads_as_itself(serve_load):
    point = serve_load.load_point([wrk_run(500, 0, 5, 3000, 8000)], "moe", "single", 1)
    assert (point.passes, point.requests_per_s, point.p99_ms, point.failed) == (1, 100, 8.0, 1)
