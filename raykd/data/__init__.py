"""Scoring data: one dataset form, readers for the supported corpora, splits and digests."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from raykd.data.asap import read_asap, read_asap_unlabelled
from raykd.data.dataset import MULTICLASS, MULTILABEL, Problem, ScoringDataset, TaskSpec, concat
from raykd.data.generic import ColumnMap, read_generic
from raykd.data.pasta import read_pasta
from raykd.data.semeval import read_semeval, read_semeval_dir
from raykd.data.splits import make_splits
from raykd.errors import DataError

__all__ = [
    "MULTICLASS", "MULTILABEL", "ColumnMap", "Problem", "ScoringDataset", "TaskSpec", "concat", "data_dir",
    "detect_format", "load_dataset", "make_splits", "read_asap", "read_asap_unlabelled", "read_generic",
    "read_pasta", "read_semeval", "read_semeval_dir", "resolve_data_path",
]

FORMATS = ("asap", "asap_unlabelled", "semeval", "semeval_dir", "pasta", "generic")


def data_dir() -> Path:
    """`$RAYKD_DATA_DIR`, else `../shared/data` beside the working directory or beside this checkout."""
    env = os.environ.get("RAYKD_DATA_DIR")
    if env:
        return Path(env).expanduser().resolve()
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        candidate = (base / ".." / "shared" / "data").resolve()
        if candidate.is_dir():
            return candidate
    return (Path.cwd() / ".." / "shared" / "data").resolve()


def resolve_data_path(path: str | Path) -> Path:
    """A path as given if it exists, else relative to the data directory (so configs can say `asap_sas`)."""
    p = Path(os.path.expandvars(str(path))).expanduser()
    if p.exists() or p.is_absolute():
        return p
    return data_dir() / p


def detect_format(path: Path) -> str:
    if path.is_dir():
        if (path / "gold_train_test_split").is_dir():
            return "asap"
        if (path / "leocomelli_2way").is_dir():
            return "semeval"
        if any(path.glob("task*_train.csv")) or any(path.glob("task*_test.csv")):
            return "pasta"
        if any(path.glob("*.xml")):
            return "semeval_dir"
        raise DataError(str(path), "cannot tell the dataset format of this folder "
                                   "(expected ASAP-SAS, SemEval-2013, PASTA taskN_*.csv or *.xml files)")
    if path.name == "private_leaderboard.tsv":
        return "asap_unlabelled"
    if path.suffix.lower() in (".csv", ".tsv", ".jsonl", ".ndjson", ".parquet"):
        return "generic"
    if not path.exists():
        raise DataError(str(path), "no such file or folder")
    raise DataError(str(path), f"unsupported file type {path.suffix!r}")


def load_dataset(path: str | Path, format: str = "auto", skip_invalid: bool = False,
                 **options: Any) -> ScoringDataset:
    """Read a dataset by format (`auto` detects it). Options go to the reader (e.g. `sets=[1, 2]`)."""
    path = resolve_data_path(path)
    if not path.exists():
        raise DataError(str(path), "no such file or folder (set RAYKD_DATA_DIR or give a full path)")
    fmt = detect_format(path) if format == "auto" else format
    if fmt == "asap":
        return read_asap(path, skip_invalid=skip_invalid, **options)
    if fmt == "asap_unlabelled":
        return read_asap_unlabelled(path, skip_invalid=skip_invalid, **options)
    if fmt == "semeval":
        # corpora: ["sciEntsBank", "beetle:3"] reads each corpus as its own task (":N" picks N-way labels).
        corpora = options.pop("corpora", None)
        if corpora is None and "corpus" not in options:
            corpora = ["sciEntsBank", "beetle"]
        if corpora is not None:
            parts = []
            for item in corpora:
                corpus, _, ways = str(item).partition(":")
                opts = {**options, **({"ways": int(ways)} if ways else {})}
                parts.append(read_semeval(path, corpus=corpus, skip_invalid=skip_invalid, **opts))
            return concat(parts, "semeval2013")
        return read_semeval(path, skip_invalid=skip_invalid, **options)
    if fmt == "semeval_dir":
        from raykd.data.semeval import task_spec

        task = task_spec(options.pop("corpus", path.name), options.pop("ways", 2))
        return read_semeval_dir(path, task, skip_invalid=skip_invalid, **options)
    if fmt == "pasta":
        return read_pasta(path, skip_invalid=skip_invalid, **options)
    if fmt == "generic":
        columns = options.pop("columns", None)
        if isinstance(columns, dict):
            columns = ColumnMap(**{k: tuple(v) if k == "label_columns" else v for k, v in columns.items()})
        return read_generic(path, columns or ColumnMap(), skip_invalid=skip_invalid, **options)
    raise DataError(str(path), f"unknown format {fmt!r}; choose one of {FORMATS} or auto")
