"""Small datasets written by the tests themselves (never copies of ../shared/data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CRITERIA = ["E1", "E2", "E3"]
PHRASES = {
    "E1": ["gas particles spread out", "the molecules move apart"],
    "E2": ["heat makes them move faster", "higher temperature speeds particles"],
    "E3": ["the pressure pushes the walls", "particles hit the balloon wall"],
}


def write_pasta_task(root: Path, n_train: int = 60, n_test: int = 20, seed: int = 0) -> Path:
    """A PASTA-style multi-label task whose labels are recoverable from the text."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        lines = ["id,response," + ",".join(CRITERIA)]
        for i in range(n):
            flags = rng.integers(0, 2, size=len(CRITERIA))
            parts = [PHRASES[c][rng.integers(0, 2)] for c, f in zip(CRITERIA, flags, strict=True) if f]
            text = " and ".join(parts) if parts else "I do not know"
            lines.append(f"{split}-{i},{text}," + ",".join(str(int(f)) for f in flags))
        (root / f"task1_{split}.csv").write_text("\n".join(lines) + "\n")
    return root
