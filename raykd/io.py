"""File output: atomic (a reader never sees a half-written file), and CSVs safe to open in a spreadsheet."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV injection"; ASVS 1.2.10 adds
# NUL). Such a cell is written behind a single quote, which spreadsheets read as "this is text". A plain number
# such as -2 or +1.5e3 is left alone: it is read as a number, never run.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")
PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def neutralise(value: object) -> object:
    """`value` with a leading single quote when a spreadsheet would run it as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with every text cell neutralised (numeric columns are untouched): what a CSV for people gets."""
    out = frame.copy()
    for column in out.columns:
        if not pd.api.types.is_numeric_dtype(out[column]) and not pd.api.types.is_bool_dtype(out[column]):
            out[column] = out[column].map(neutralise)
    return out


def write_table_atomic(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a DataFrame as Parquet, CSV or JSONL (by suffix), atomically. CSVs are opened in spreadsheets, so
    their text cells are `spreadsheet_safe`; Parquet and JSONL keep the values as they are."""
    path = Path(path)
    with atomic_path(path) as tmp:
        suffix = path.suffix.lower()
        if suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        elif suffix == ".csv":
            spreadsheet_safe(frame).to_csv(tmp, index=False)
        elif suffix in (".jsonl", ".json"):
            frame.to_json(tmp, orient="records", lines=True)
        else:
            raise ValueError(f"{path}: unsupported output format {suffix!r} (use .parquet, .csv or .jsonl)")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside `path`; it replaces `path` only if the block succeeds, so a
    model folder is either the old one or the complete new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def copy_dir_atomic(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    with atomic_dir(dst) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
    return Path(dst)


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (lineage of artifacts such as soft labels)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
