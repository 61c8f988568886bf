"""Measuring models where they run: throughput of a scorer and the size of an artifact on disk (a model's footprint)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def throughput(scorer: Any, texts: list[str], tasks: list[str], batch_size: int, repeats: int = 1) -> float:
    """Responses per second of `scorer.predict_proba` at `batch_size` (after one warm-up batch)."""
    scorer.predict_proba(texts[:batch_size], tasks[:batch_size], batch_size=batch_size)
    t0 = time.perf_counter()
    for _ in range(repeats):
        scorer.predict_proba(texts, tasks, batch_size=batch_size)
    return repeats * len(texts) / (time.perf_counter() - t0)


def dir_bytes(path: str | Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
