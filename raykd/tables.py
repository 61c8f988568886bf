"""Tables for people: Markdown (reports) and aligned plain text (the terminal), with one way to write a cell."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def cell(value: Any, digits: int = 3) -> str:
    """`-` for missing; integers (and floats from 1,000) with thousands separators; other floats to `digits`."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) or (isinstance(value, float) and abs(value) >= 1000):
        return f"{value:,.0f}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def plain(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns with a dashed rule under the header."""
    table = [list(header), *[[cell(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
