"""Offline scoring of a file with a saved model (`raykd predict`).

Small inputs are read whole, scored in this process, and gold labels (when present) are scored too. Large
inputs (or `--stream on`) stream through Ray Data with bounded memory (raykd.predict.stream). Both paths
validate rows with the same code (raykd.predict.rows) and write the same table: `id, task, prediction,
p_<label>...`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from raykd.confidence import ReviewPolicy
from raykd.evaluation import primary
from raykd.io import write_table_atomic
from raykd.predict.rows import gold_metrics, read_for_scoring, score_dataset

STREAM_ABOVE_BYTES = 50 * 2**20  # `--stream auto`: files larger than this go through Ray Data


def should_stream(input_path: str | Path, stream: Literal["auto", "on", "off"]) -> bool:
    if stream != "auto":
        return stream == "on"
    path = Path(input_path)
    return path.is_file() and path.stat().st_size > STREAM_ABOVE_BYTES


def predict_file(model: str, input_path: str, output_path: str, tracking_uri: str | None = None,
                 skip_invalid: bool = False, batch_size: int = 64, stream: Literal["auto", "on", "off"] = "auto",
                 workers: int | None = None, review: ReviewPolicy | None = None) -> dict[str, dict[str, float]]:
    """Score `input_path` into `output_path` (written atomically). Returns per-task metrics where the file
    has gold labels (whole-file path only). `review` replaces the model's saved review policy."""
    if should_stream(input_path, stream):
        from raykd.predict.stream import predict_stream

        predict_stream(model, input_path, output_path, tracking_uri=tracking_uri, skip_invalid=skip_invalid,
                       workers=workers, review=review)
        return {}
    from raykd.scoring import load_scorer

    scorer = load_scorer(model, tracking_uri, review=review)
    ds = read_for_scoring(input_path, scorer.layout, skip_invalid)
    if ds.problems:
        print(f"skipped {len(ds.problems)} invalid row(s); first: {ds.problems[0]}")
    scored, probs = score_dataset(scorer, ds, batch_size)
    write_table_atomic(scored, output_path)
    print(f"scored {len(scored)} responses with the {scorer.kind} at {model} -> {output_path}")
    metrics = gold_metrics(scorer, ds, probs)
    if metrics:
        prim = []
        for task, m in metrics.items():
            key = primary(scorer.layout.spec(task))
            prim.append(m[key])
            print(f"  {task:16s} " + " ".join(f"{k}={v:.4f}" for k, v in m.items() if not k.startswith("f1_")))
        print(f"  mean {key}: {np.mean(prim):.4f}")
    return metrics
