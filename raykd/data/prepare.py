"""From a `DataConfig` to a split dataset ready for training."""

from __future__ import annotations

import pandas as pd

from raykd.config import DataConfig
from raykd.data import ScoringDataset, detect_format, load_dataset, make_splits, resolve_data_path


def prepare_dataset(cfg: DataConfig) -> ScoringDataset:
    options = dict(cfg.options)
    if cfg.include_unlabelled:
        fmt = cfg.format if cfg.format != "auto" else detect_format(resolve_data_path(cfg.path))
        if fmt == "asap":
            options["include_unlabelled"] = True
    ds = make_splits(load_dataset(cfg.path, cfg.format, cfg.skip_invalid, **options),
                     cfg.validation, cfg.test, cfg.seed)
    if cfg.limit_per_task:
        frame = ds.frame.groupby(["task", "split"], group_keys=False, sort=False).head(cfg.limit_per_task)
        ds = ds.subset(ds.frame.index.isin(frame.index))
    return ds


def frame_for_split(ds: ScoringDataset, split: str) -> pd.DataFrame:
    return ds.frame[ds.frame["split"] == split].reset_index(drop=True)
