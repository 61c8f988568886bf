"""PASTA/NGSS-style multi-label rubric tasks.

Layout: `taskN_train.csv` / `taskN_test.csv`, each with a text column and one 0/1 column per rubric
label (e.g. Task 5 "Gas-Filled Balloon": E1..E5). An `id` column is used when present; otherwise ids
are made from the file and row so they stay stable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from raykd.data.dataset import MULTILABEL, RawRow, ScoringDataset, TaskSpec, build_dataset, concat
from raykd.data.files import cell, read_table
from raykd.errors import DataError

TEXT_COLUMNS = ("text", "response", "Response", "student_response", "answer", "EssayText")
ID_COLUMNS = ("id", "ID", "Id", "response_id")
_FILE = re.compile(r"^(task\w*?)_(train|test)\.csv$", re.IGNORECASE)


def read_pasta(root: str | Path, tasks: Sequence[str] | None = None, text_column: str | None = None,
               label_columns: Sequence[str] | None = None, skip_invalid: bool = False) -> ScoringDataset:
    root = Path(root)
    files = [(p, _FILE.match(p.name)) for p in sorted(root.glob("*.csv"))]
    files = [(p, m.group(1), m.group(2).lower()) for p, m in files if m]
    if tasks is not None:
        files = [f for f in files if f[1] in set(tasks)]
    if not files:
        raise DataError(str(root), "no taskN_train.csv / taskN_test.csv files found")
    specs: dict[str, TaskSpec] = {}
    parts = []
    for path, task, split in files:
        frame = read_table(path)
        text_col = text_column or next((c for c in TEXT_COLUMNS if c in frame.columns), None)
        if text_col is None or text_col not in frame.columns:
            raise DataError(str(path), f"missing text column (tried {text_column or TEXT_COLUMNS}); "
                                       f"found {list(frame.columns)}")
        id_col = next((c for c in ID_COLUMNS if c in frame.columns), None)
        labels = list(label_columns) if label_columns else [c for c in frame.columns if c not in (text_col, id_col)]
        missing = [c for c in labels if c not in frame.columns]
        if missing or not labels:
            raise DataError(str(path), f"missing label column(s) {missing or '(none)'}; found {list(frame.columns)}")
        spec = TaskSpec(task, MULTILABEL, tuple(labels))
        if task in specs and specs[task] != spec:
            raise DataError(str(path), f"label columns {labels} differ from {list(specs[task].labels)} "
                                       f"in the other {task} file")
        specs[task] = spec

        def rows(frame=frame, text_col=text_col, id_col=id_col, labels=labels, task=task,
                 split=split, stem=path.stem) -> Iterable[RawRow]:
            for i, rec in enumerate(frame.to_dict("records"), start=2):
                rid = cell(rec[id_col]) or "" if id_col else f"{stem}-{i}"
                yield RawRow(row=i, id=rid, task=task, text=cell(rec[text_col]) or "",
                             label=[cell(rec[c]) or "" for c in labels], split=split)

        parts.append(build_dataset(f"pasta:{path.name}", str(path), {task: spec}, rows(), skip_invalid))
    return concat(parts, "pasta")
