"""The data section every stage that reads responses shares (see raykd.data.load_dataset)."""

from __future__ import annotations

from dataclasses import field
from typing import Any

from raykd.config import Bool, Fraction, Int, PositiveInt, Str, config


@config
class DataConfig:
    """Which responses to read and how to split them."""

    path: Str = "asap_sas"
    format: str = "auto"
    options: dict[str, Any] = field(default_factory=dict)  # reader options, e.g. {sets: [1]}
    include_unlabelled: Bool = False
    validation: Fraction = 0.1
    test: Fraction = 0.1
    seed: Int = 0
    skip_invalid: Bool = False
    limit_per_task: PositiveInt | None = None  # keep the first N labelled rows per task and split (small runs)
    # a corrections version written by `raykd feedback` (<store>/vNNNN): people's scores replace the data's, and
    # corrected unscored responses become training responses (raykd.feedback)
    corrections: Str | None = None
