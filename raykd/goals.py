"""The project's goals for a student against its teacher, defined once: the distill stage reports against them,
and the benchmarks (bench.targets) add their own."""

from __future__ import annotations

# Students against their teacher (primary metric: QWK for ordinal scores, macro-F1 otherwise).
GAP = 0.03  # at most this far below the teacher
PARAM_RATIO = 100.0  # at least this many times fewer parameters
MAX_PARAM_SHARE = 1 / PARAM_RATIO  # the same, as a share of the teacher's parameters
SPEEDUP = 10.0  # at least this many times the teacher's CPU throughput


def verdict(ok: bool) -> str:
    return "met" if ok else "**MISSED**"
