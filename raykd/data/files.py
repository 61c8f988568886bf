"""Reading raw tables with errors that name the file and the row, never a pandas traceback."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd

from raykd.errors import DataError


def read_text(path: str | Path, data: bytes | None = None) -> str:
    """Read a file (or `data`, the bytes of a file named `path`) as strict UTF-8 (a BOM is allowed); a bad
    byte is reported with its line."""
    path = Path(path)
    if data is None:
        if not path.is_file():
            raise DataError(str(path), "file not found")
        data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DataError(
            str(path), f"wrong encoding: byte 0x{data[e.start]:02x} at line {line} is not valid UTF-8"
        ) from None


def read_table(path: str | Path, sep: str | None = None) -> pd.DataFrame:
    """Read CSV/TSV/JSONL/Parquet into a DataFrame of strings (missing cells are None)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        if not path.is_file():
            raise DataError(str(path), "file not found")
        try:
            frame = pd.read_parquet(path)
        except Exception as e:  # pyarrow raises many types for a corrupt file
            raise DataError(str(path), f"not a readable Parquet file ({e.__class__.__name__}: {e})") from None
    elif suffix in (".jsonl", ".ndjson", ".json"):
        frame = pd.DataFrame([obj for _, obj in json_records(path, read_text(path).splitlines())])
    elif suffix in (".csv", ".tsv", ".txt"):
        text = read_text(path)
        if sep is None:
            sep = "\t" if suffix in (".tsv", ".txt") else ","
        try:
            # TSV files here are unquoted (texts hold stray quotes); CSV follows RFC 4180 quoting.
            frame = pd.read_csv(
                io.StringIO(text),
                sep=sep,
                dtype=str,
                keep_default_na=False,
                quoting=csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL,
            )
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
            raise DataError(str(path), f"cannot parse as {'TSV' if sep == chr(9) else 'CSV'}: {e}") from None
    else:
        raise DataError(str(path), f"unsupported file type {suffix!r} (use .csv, .tsv, .jsonl or .parquet)")
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame.astype(object).where(frame.notna(), None)


def json_records(path: str | Path, lines: Iterable[str]) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line of a JSON-lines file; a bad line names its number."""
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(str(path), f"invalid JSON ({e.msg})", row=i) from None
        if not isinstance(obj, dict):
            raise DataError(str(path), "each line must be a JSON object", row=i)
        yield i, obj


def require_columns(frame: pd.DataFrame, columns: list[str], path: str | Path) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(str(path), f"missing column(s) {missing}; found {list(frame.columns)}")


def cell(value: object) -> str | None:
    """A table cell as a stripped string, or None when empty."""
    if value is None:
        return None
    s = str(value).strip()
    return s or None
