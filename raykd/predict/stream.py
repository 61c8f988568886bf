"""Streaming batch scoring of large files through Ray Data (`raykd predict --stream`).

    file ──read task──> blocks of rows (+ their file row numbers) ──actor pool──> scored blocks ──> driver
                                                                                   writes them in order

The file is read in record batches (pyarrow's streaming CSV reader, Parquet row groups, JSON lines), so
no stage holds more than a few blocks; Ray Data's backpressure bounds the rest. Each actor loads the model
once and validates rows with the same code as the whole-file path (`raykd.predict.rows.scoring_dataset`), handing
back each invalid row's number and reason; the driver stops at the first one, naming file and row, or with
`skip_invalid` drops and counts them. The header is checked before any actor starts. The driver appends the
scored blocks to a temporary file beside the output and renames it into place when every row is written: a
reader sees the old output or the complete new one. Gold labels are not scored on this path.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from raykd.confidence import ReviewPolicy
from raykd.data.files import json_records
from raykd.errors import DataError
from raykd.io import atomic_path, spreadsheet_safe
from raykd.scoring import plain_columns

ROW = "_row"  # the file row number of each response (the header is row 1), for error messages
PROBLEM = "_problem"  # why a row is invalid, None for scored rows
BLOCK_ROWS = 4096


# ------------------------------------------------------------------------------------------------ reading
def _header(path: Path, sep: str) -> list[str]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        line = f.readline()
    if not line.strip():
        raise DataError(str(path), "the file is empty (no header row)")
    if sep == "\t":  # TSV files here are unquoted, as in the whole-file path
        return line.rstrip("\r\n").split("\t")
    return next(csv.reader([line]))


def read_blocks(path: str | Path, block_rows: int = BLOCK_ROWS) -> Iterator[pa.Table]:
    """The file as Arrow tables of string columns plus `_row`, read incrementally."""
    path = Path(path)
    suffix = path.suffix.lower()
    start = 2
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(path).iter_batches(batch_size=block_rows):
                table = pa.Table.from_batches([batch])
                table = pa.table({name.strip(): table[name].cast(pa.string()) for name in table.column_names})
                yield _numbered(table, start)
                start += table.num_rows
        elif suffix in (".csv", ".tsv", ".txt"):
            from pyarrow import csv as pacsv

            sep = "\t" if suffix in (".tsv", ".txt") else ","
            names = _header(path, sep)
            reader = pacsv.open_csv(
                path, read_options=pacsv.ReadOptions(block_size=1 << 20),
                parse_options=pacsv.ParseOptions(delimiter=sep, quote_char=False if sep == "\t" else '"',
                                                 newlines_in_values=sep != "\t"),
                convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                     strings_can_be_null=False, quoted_strings_can_be_null=False))
            for batch in reader:
                table = pa.Table.from_batches([batch]).rename_columns([n.strip() for n in names])
                for offset in range(0, table.num_rows, block_rows):
                    part = table.slice(offset, block_rows)
                    yield _numbered(part, start)
                    start += part.num_rows
        elif suffix in (".jsonl", ".ndjson", ".json"):
            yield from _json_blocks(path, block_rows)
        else:
            raise DataError(str(path), f"unsupported file type {suffix!r} (use .csv, .tsv, .jsonl or .parquet)")
    except (pa.ArrowInvalid, UnicodeDecodeError) as e:
        raise DataError(str(path), f"cannot read past row {start - 1}: {e}") from None


def _numbered(table: pa.Table, start: int) -> pa.Table:
    return table.append_column(ROW, pa.array(range(start, start + table.num_rows), pa.int64()))


def _json_blocks(path: Path, block_rows: int) -> Iterator[pa.Table]:
    records: list[dict] = []
    start = 2
    with open(path, encoding="utf-8-sig") as f:
        for _, obj in json_records(path, f):
            records.append({k: None if v is None else str(v) for k, v in obj.items()})
            if len(records) == block_rows:
                yield _numbered(pa.Table.from_pylist(records), start)
                start += len(records)
                records = []
    if records:
        yield _numbered(pa.Table.from_pylist(records), start)


def estimate_rows(path: str | Path) -> int | None:
    """Rows in the file: exact for Parquet, lines minus the header for text files (for the progress bar)."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    lines = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            lines += block.count(b"\n")
    return max(0, lines - (path.suffix.lower() in (".csv", ".tsv", ".txt")))


def responses_dataset(path: str | Path) -> Any:
    """A Ray Data dataset over the file's rows, read by one streaming read task."""
    import ray.data
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    path = Path(path)
    if not path.is_file():
        raise DataError(str(path), "file not found")

    class ResponsesDatasource(Datasource):
        def estimate_inmemory_data_size(self) -> int:
            return path.stat().st_size

        def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                           data_context: Any = None) -> list[ReadTask]:
            meta = BlockMetadata(num_rows=None, size_bytes=path.stat().st_size, input_files=[str(path)],
                                 exec_stats=None)
            return [ReadTask(lambda: read_blocks(path), meta)]

    # One read task streams the file in order; its blocks are already batch-sized, so Ray Data must not split them.
    return ray.data.read_datasource(ResponsesDatasource(), num_cpus=0.25, override_num_blocks=1)


# ------------------------------------------------------------------------------------------------ scoring
class BlockScorer:
    """A Ray Data callable class: loads the model once per actor, validates and scores pandas blocks. Invalid
    rows come back as rows with only `_row` and `_problem` set; the driver decides what they mean."""

    def __init__(self, model: str, tracking_uri: str | None, path: str, batch_size: int,
                 review: ReviewPolicy | None = None):
        from raykd.scoring import load_scorer

        self.scorer = load_scorer(model, tracking_uri, review=review)
        self.path, self.batch_size = path, batch_size

    def __call__(self, block: pd.DataFrame) -> pd.DataFrame:
        from raykd.predict.rows import scoring_dataset
        from raykd.scoring import scores_frame

        rows = block.pop(ROW).tolist()
        ds = scoring_dataset(block, self.scorer.layout, self.path, skip_invalid=True, rows=rows, allow_empty=True)
        f = ds.frame
        tasks = f["task"].tolist()
        probs = self.scorer.predict_proba(f["text"].tolist(), tasks, f["question"].tolist(),
                                          f["reference"].tolist(), batch_size=self.batch_size)
        out = scores_frame(self.scorer, f["id"].tolist(), tasks, probs)
        out[ROW], out[PROBLEM] = -1, None
        if ds.problems:
            bad = pd.DataFrame({ROW: [p.row for p in ds.problems], PROBLEM: [p.reason for p in ds.problems]})
            out = pd.concat([out, bad], ignore_index=True)
        return out


# ------------------------------------------------------------------------------------------------ writing
@contextmanager
def table_appender(path: str | Path) -> Iterator[Any]:
    """`append(table)` for each Arrow block, into a temporary file renamed over `path` when the block succeeds.
    Parquet goes straight from Arrow through one ParquetWriter; CSV and JSONL are written by pandas exactly as
    the whole-file path writes them."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".jsonl", ".json"):
        raise ValueError(f"{path}: unsupported output format {suffix!r} (use .parquet, .csv or .jsonl)")
    with atomic_path(path) as tmp:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            writer: list[Any] = []

            def append(table: pa.Table) -> None:
                if not writer:
                    writer.append(pq.ParquetWriter(tmp, table.schema))
                writer[0].write_table(table.cast(writer[0].schema))

            try:
                yield append
            finally:
                if writer:
                    writer[0].close()
        else:
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                first = [True]

                def append(table: pa.Table) -> None:
                    frame = plain_columns(table.to_pandas())
                    if suffix == ".csv":
                        spreadsheet_safe(frame).to_csv(f, index=False, header=first[0])
                    else:
                        f.write(frame.to_json(orient="records", lines=True).rstrip("\n") + "\n")
                    first[0] = False

                yield append


def check_header(path: str | Path, model: str, tracking_uri: str | None) -> None:
    """Fail before any actor starts when the file lacks the columns the model needs."""
    from raykd.heads import TaskLayout
    from raykd.predict.rows import column_plan
    from raykd.scoring import MANIFEST, resolve_model

    manifest = json.loads((resolve_model(model, tracking_uri) / MANIFEST).read_text())
    first = next(read_blocks(path, block_rows=1), None)
    if first is None:
        raise DataError(str(path), "no responses in the file")
    column_plan([c for c in first.column_names if c != ROW], TaskLayout.from_list(manifest["tasks"]), path)


def predict_stream(model: str, input_path: str, output_path: str, tracking_uri: str | None = None,
                   skip_invalid: bool = False, workers: int | None = None, batch_size: int = 1024,
                   review: ReviewPolicy | None = None) -> dict[str, Any]:
    """Score a large file through Ray Data with bounded memory; returns counts and the rate."""
    import ray
    from ray.data import ActorPoolStrategy, ExecutionResources
    from tqdm import tqdm

    from raykd.data.dataset import SKIP_HINT, Problem, problems_report
    from raykd.runtime import ensure_ray

    t0 = time.perf_counter()
    check_header(input_path, model, tracking_uri)
    ensure_ray(include_dashboard=False)
    cpus = max(1.0, ray.available_resources().get("CPU", 1.0))
    size = workers or int(cpus)
    ds = responses_dataset(input_path).map_batches(
        BlockScorer, fn_constructor_kwargs={"model": model, "tracking_uri": tracking_uri, "path": input_path,
                                            "batch_size": batch_size, "review": review},
        batch_size=None, batch_format="pandas", compute=ActorPoolStrategy(size=size),
        num_cpus=min(1.0, max(0.25, (cpus - 0.25) / size)))
    ctx = ds.context  # this dataset's own settings, not the process-wide defaults other stages use
    # Blocks as read (BLOCK_ROWS rows, ~1 MB): the default 128 MB target would merge the file into one block.
    ctx.target_max_block_size = 4 * 2**20
    ctx.execution_options.preserve_order = True  # output rows follow input rows
    ctx.execution_options.resource_limits = ExecutionResources(object_store_memory=256 * 2**20)
    ctx.enable_progress_bars = False  # one bar below, in rows
    scored, problems = 0, []
    with table_appender(output_path) as append, tqdm(total=estimate_rows(input_path), unit="resp",
                                                     desc="scoring", smoothing=0.1) as bar:
        for block in ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=2):
            bad = pc.is_valid(block[PROBLEM])
            n_bad = pc.sum(bad).as_py() or 0
            if n_bad:
                invalid = block.filter(bad)
                found = [Problem(str(input_path), int(r), str(p)) for r, p in
                         zip(invalid[ROW].to_pylist(), invalid[PROBLEM].to_pylist(), strict=True)]
                if not skip_invalid:
                    first = min(found, key=lambda p: p.row or 0)
                    raise DataError(first.path, first.reason + SKIP_HINT, row=first.row)
                problems += found
                block = block.filter(pc.invert(bad))
            append(block.drop_columns([PROBLEM, ROW]))
            scored += block.num_rows
            bar.update(block.num_rows + n_bad)
    seconds = time.perf_counter() - t0
    dropped = len(problems)
    if dropped:
        first = min(problems, key=lambda p: p.row or 0)
        print(f"skipped {dropped} invalid row(s); first: {first}; by reason: {problems_report(problems)}")
    print(f"scored {scored:,} responses in {seconds:.1f}s ({scored / seconds:,.0f}/s, {size} scoring actor(s)) "
          f"-> {output_path}")
    return {"scored": scored, "skipped": dropped, "seconds": seconds, "responses_per_s": scored / seconds,
            "actors": size}
