"""From a `DataConfig` to a dataset: read (`load_unsplit`), then split and trim (`prepare_dataset`).

Only the first stage of a pipeline splits; later stages reuse its record (raykd.data.prepared).
"""

from __future__ import annotations

from raykd.data import ScoringDataset, detect_format, load_dataset, make_splits, resolve_data_path
from raykd.data.config import DataConfig


def load_unsplit(cfg: DataConfig) -> ScoringDataset:
    """The responses `cfg` names, with the splits their source defines (ASAP-SAS test, SemEval test)."""
    options = dict(cfg.options)
    if cfg.include_unlabelled:
        fmt = cfg.format if cfg.format != "auto" else detect_format(resolve_data_path(cfg.path))
        if fmt == "asap":
            options["include_unlabelled"] = True
    return load_dataset(cfg.path, cfg.format, cfg.skip_invalid, **options)


def prepare_dataset(cfg: DataConfig) -> ScoringDataset:
    """Read, split (seeded, stratified) and, for small runs, keep the first `limit_per_task` rows per task and
    split."""
    ds = make_splits(load_unsplit(cfg), cfg.validation, cfg.test, cfg.seed)
    if cfg.limit_per_task:
        frame = ds.frame.groupby(["task", "split"], group_keys=False, sort=False).head(cfg.limit_per_task)
        ds = ds.subset(ds.frame.index.isin(frame.index))
    return ds
