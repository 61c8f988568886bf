"""A file uploaded to `/v1/score/file`, read with its size bounded while it is parsed, and the name it goes back under.

Uploads are CSV, TSV (`.tsv`, `.txt`) or JSON lines (`.jsonl`, `.ndjson`): formats whose parsed size is at most
a small multiple of their bytes. Parquet, which can expand far past its size on the wire, is for `raykd predict`.
While parsing, the reader stops at the first row over `max_rows` (413), a cell over `max_cell_chars`, more than
MAX_COLUMNS columns or keys, or a nested JSON value (422, naming the row). Rows parse as `raykd predict` reads the
same file (pandas' CSV reading: blank lines skipped, short rows padded with empty cells), so both score alike.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import quote

import pandas as pd
from pydantic_core import from_json

from raykd.data.files import read_text
from raykd.errors import DataError

UPLOAD_SUFFIXES = {".csv": ",", ".tsv": "\t", ".txt": "\t", ".jsonl": None, ".ndjson": None}
MAX_COLUMNS = 32
MAX_NAME_CHARS = 200
ID_COLUMNS = ("id", "Id")


class UploadRefused(Exception):
    """An upload refused before or while it is parsed, with the HTTP status that says why."""

    def __init__(self, status: int, detail: str):
        self.status, self.detail = status, detail
        super().__init__(detail)


@dataclass(frozen=True)
class UploadLimits:
    max_rows: int
    max_cell_chars: int
    max_id_chars: int  # the id columns `raykd predict` reads (ID_COLUMNS)


def upload_name(name: str) -> str:
    """The upload's base name, without folders, control characters or an unbounded length; its suffix must be
    one of UPLOAD_SUFFIXES (415 otherwise)."""
    base = PurePosixPath(name.replace("\\", "/")).name
    base = "".join(c for c in base if unicodedata.category(c)[0] != "C")[-MAX_NAME_CHARS:] or "responses.csv"
    suffix = PurePosixPath(base).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        shown = suffix or "(none)"
        raise UploadRefused(415, f"{base}: uploads are {', '.join(UPLOAD_SUFFIXES)} files, not {shown}; "
                                 "score Parquet and other files with raykd predict")
    return base


def content_disposition(filename: str) -> str:
    """An attachment header per RFC 6266: `filename*` in UTF-8 and a plain ASCII fallback for old clients (the
    name's ASCII letters, or `responses` where it has none before its first dot)."""
    plain = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
    plain = re.sub(r"[^A-Za-z0-9._-]+", "_", plain)
    first, dot, rest = plain.partition(".")
    first = first.strip("_")
    if not re.search(r"[A-Za-z0-9]", first):
        first = "responses"
    return f"attachment; filename=\"{first}{dot}{rest}\"; filename*=UTF-8''{quote(filename, safe='')}"


def parse_upload(name: str, data: bytes, limits: UploadLimits) -> pd.DataFrame:
    """The upload as a table of string cells (None where a JSON key is absent), bounded by `limits`."""
    sep = UPLOAD_SUFFIXES[PurePosixPath(name).suffix.lower()]
    text = read_text(name, data)
    records = _json_lines(name, text, limits) if sep is None else _delimited(name, text, sep, limits)
    header = next(records)
    return pd.DataFrame(list(records), columns=header, dtype=object)


def _check_row(name: str, row: int, count: int, cells: dict[str, str | None], limits: UploadLimits) -> None:
    if count > limits.max_rows:
        raise UploadRefused(413, f"{name}: more than {limits.max_rows:,} responses; at most {limits.max_rows:,} "
                                 "in one upload here (use raykd predict)")
    for column, value in cells.items():
        most = limits.max_id_chars if column in ID_COLUMNS else limits.max_cell_chars
        if value is not None and len(value) > most:
            raise DataError(name, f"column {column!r} has {len(value):,} characters; at most {most:,}", row=row)


def _columns(name: str, header: list[str]) -> list[str]:
    columns = [c.strip() for c in header]
    if len(columns) > MAX_COLUMNS:
        raise DataError(name, f"{len(columns)} columns; at most {MAX_COLUMNS}")
    if len(set(columns)) != len(columns):
        raise DataError(name, f"duplicate column names in the header {columns}")
    return columns


def _delimited(name: str, text: str, sep: str, limits: UploadLimits) -> Iterator[list]:
    # TSV files here are unquoted (texts hold stray quotes); CSV follows RFC 4180 quoting, as in read_table, and
    # strictly: a quote never closed (pandas: "EOF inside string") or text after a closing quote is an error.
    quoting = csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, quoting=quoting, strict=sep != "\t")
    try:
        rows = (r for r in reader if r and not (len(r) == 1 and not r[0].strip()))  # blank lines, as pandas skips
        first = next(rows, None)
        if first is None:
            raise DataError(name, "the file is empty (no header row)")
        columns = _columns(name, first)
        yield columns
        for count, cells in enumerate(rows, start=1):
            row = count + 1  # the header is row 1
            if len(cells) > len(columns):
                raise DataError(name, f"expected {len(columns)} fields, saw {len(cells)}", row=row)
            cells += [""] * (len(columns) - len(cells))
            _check_row(name, row, count, dict(zip(columns, cells, strict=True)), limits)
            yield cells
    except csv.Error as e:
        raise DataError(name, f"cannot parse as {'TSV' if sep == chr(9) else 'CSV'} near line {reader.line_num}: "
                              f"{e}") from None


def _json_lines(name: str, text: str, limits: UploadLimits) -> Iterator[list]:
    objects: list[dict[str, str | None]] = []
    keys: dict[str, None] = {}
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = from_json(line)  # bounded nesting: deep input is an error, never a RecursionError
        except ValueError as e:
            raise DataError(name, f"invalid JSON ({e})", row=line_no) from None
        if not isinstance(obj, dict):
            raise DataError(name, "each line must be a JSON object", row=line_no)
        cells: dict[str, str | None] = {}
        for key, value in obj.items():
            if isinstance(value, dict | list):
                raise DataError(name, f"key {key!r} holds a nested value; values are strings or numbers",
                                row=line_no)
            cells[key.strip()] = None if value is None else str(value)
            keys.setdefault(key.strip())
        if len(keys) > MAX_COLUMNS:
            raise DataError(name, f"more than {MAX_COLUMNS} distinct keys", row=line_no)
        _check_row(name, line_no, len(objects) + 1, cells, limits)
        objects.append(cells)
    columns = list(keys)
    yield columns
    for cells in objects:
        yield [cells.get(c) for c in columns]
