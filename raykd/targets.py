"""The project's targets, defined once: the distill job, the benchmark report and the load report check these."""

from __future__ import annotations

# Students against their teacher (primary metric: QWK for ordinal scores, macro-F1 otherwise).
GAP = 0.03  # at most this far below the teacher
PARAM_RATIO = 100.0  # at least this many times fewer parameters
MAX_PARAM_SHARE = 1 / PARAM_RATIO  # the same, as a share of the teacher's parameters
SPEEDUP = 10.0  # at least this many times the teacher's CPU throughput

# Serving under load (bench/serve_load.py, a 2-core machine).
SINGLE_RPS_AT_32 = 300.0  # one-response requests per second at 32 connections
SINGLE_P99_MS_AT_32 = 100.0
BATCH64_RESPONSES_PER_S = 10_000.0  # responses per second in requests of 64
PREDICT_RESPONSES_PER_S = 20_000.0  # `raykd predict` on 1,000,000 responses
PREDICT_PEAK_GB = 2.0
FAULT_FAILED_SHARE = 0.01  # one of two replicas killed under load
FAULT_RECOVERY_S = 30.0


def verdict(ok: bool) -> str:
    return "met" if ok else "**MISSED**"
