"""Deterministic, stratified train/validation/test splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from raykd.data.dataset import ScoringDataset


def _strata(ys: pd.Series) -> np.ndarray | None:
    keys = ys.map(lambda y: "|".join(map(str, y)) if isinstance(y, tuple | list) else str(y))
    counts = keys.value_counts()
    # sklearn needs >= 2 rows per stratum; rare label combinations fall back to a shared bucket.
    keys = keys.where(keys.map(counts) >= 2, "__rare__")
    return keys.to_numpy() if keys.value_counts().min() >= 2 else None


def _carve(index: pd.Index, ys: pd.Series, fraction: float, seed: int) -> tuple[pd.Index, pd.Index]:
    if fraction <= 0 or len(index) < 2:
        return index, index[:0]
    n_out = max(1, round(len(index) * fraction))
    strata = _strata(ys.loc[index])
    if strata is not None and n_out < len(set(strata)):
        strata = None  # too few held-out rows to hold every stratum
    keep, out = train_test_split(list(index), test_size=n_out, random_state=seed, stratify=strata)
    return pd.Index(sorted(keep)), pd.Index(sorted(out))


def make_splits(ds: ScoringDataset, validation: float = 0.1, test: float = 0.1, seed: int = 0) -> ScoringDataset:
    """Assign train/validation/test per task, stratified by label, the same for the same seed.

    A test split that the source defines (ASAP-SAS GOLD_test, SemEval test-unseen-answers) is kept as it
    is and validation is carved from train; otherwise `test` of the labelled rows becomes the test split.
    Unlabelled rows stay `unlabelled`.
    """
    if not (0 <= validation < 1 and 0 <= test < 1 and validation + test < 1):
        raise ValueError(f"split fractions must be in [0, 1) and sum below 1 (validation={validation}, test={test})")
    frame = ds.frame.copy()
    for task in ds.tasks:
        rows = frame[(frame["task"] == task) & frame["y"].notna()]
        has_test = (rows["split"] == "test").any()
        pool = rows.index[rows["split"].isin(["train", "validation"])] if has_test else rows.index
        if not has_test:
            pool, test_idx = _carve(pool, frame["y"], test, seed)
            frame.loc[test_idx, "split"] = "test"
        rest = validation / (1 - (0 if has_test else test))
        train_idx, val_idx = _carve(pool, frame["y"], rest, seed)
        frame.loc[train_idx, "split"] = "train"
        frame.loc[val_idx, "split"] = "validation"
    return ScoringDataset(ds.name, dict(ds.tasks), frame, list(ds.problems))
