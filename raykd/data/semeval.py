"""SemEval-2013 Task 7 (Student Response Analysis): SciEntsBank and Beetle XML.

Each XML file is one question with its reference answers and labelled student answers
(`<studentAnswer id=... accuracy=...>`). The question text and reference answers are kept on every
response, since scoring models compare the answer against them. `read_semeval_dir` reads any folder
of such files; `read_semeval` knows the layout of `$RAYKD_DATA_DIR/semeval2013_task7`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

from raykd.data.dataset import MULTICLASS, RawRow, ScoringDataset, TaskSpec, build_dataset, concat
from raykd.data.files import read_text
from raykd.errors import DataError

LABELS = {
    2: ("incorrect", "correct"),
    3: ("incorrect", "contradictory", "correct"),
    5: ("non_domain", "irrelevant", "contradictory", "partially_correct_incomplete", "correct"),
}
CORPORA = ("sciEntsBank", "beetle")
_WAY_DIR = {2: "twoWay", 3: "threeWay", 5: "fiveWay"}


def task_spec(corpus: str, ways: int) -> TaskSpec:
    if ways not in LABELS:
        raise ValueError(f"SemEval-2013 labels are 2-, 3- or 5-way, not {ways}-way")
    return TaskSpec(f"{corpus.lower()}_{ways}way", MULTICLASS, LABELS[ways])


def _parse_file(path: Path) -> ET.Element:
    try:
        return ET.fromstring(read_text(path))
    except ET.ParseError as e:
        raise DataError(str(path), f"invalid XML ({e})", row=e.position[0]) from None


def _rows(path: Path, task: str, split: str, gold: dict[str, str] | None) -> Iterable[RawRow]:
    root = _parse_file(path)
    if root.tag != "question":
        raise DataError(str(path), f"expected a <question> root element, found <{root.tag}>")
    question = (root.findtext("questionText") or "").strip() or None
    refs = [(r.text or "").strip() for r in root.iter("referenceAnswer")]
    reference = "\n".join(r for r in refs if r) or None
    for n, ans in enumerate(root.iter("studentAnswer"), start=1):
        sid = ans.get("id", "")
        label = gold.get(sid) if gold is not None else ans.get("accuracy")
        if gold is None and label is None:
            label = ""  # a training answer without a label is an error, not an unscored response
        yield RawRow(row=n, id=sid, task=task, text=(ans.text or "").strip(), label=label,
                     split=split, question=question, reference=reference)


def read_semeval_dir(folder: str | Path, task: TaskSpec, split: str = "train",
                     gold: dict[str, str] | None = None, skip_invalid: bool = False,
                     test_set: str | None = None) -> ScoringDataset:
    """Read every question XML in `folder`. `gold` maps answer id -> label for releases without labels;
    `test_set` keeps only questions whose `testSet` attribute matches (Beetle's merged test folder)."""
    folder = Path(folder)
    files = sorted(folder.glob("*.xml"))
    if not files:
        raise DataError(str(folder), "no SemEval *.xml files found")
    parts = []
    for path in files:
        if test_set is not None and _parse_file(path).get("testSet") != test_set:
            continue
        rows = _rows(path, task.name, split, gold)
        if gold is not None:
            rows = (r for r in rows if r.id in gold)
        parts.append(build_dataset(f"semeval:{path.name}", str(path), {task.name: task}, rows, skip_invalid))
    return concat(parts, f"semeval:{task.name}")


def _read_gold_table(path: Path) -> dict[str, str]:
    gold = {}
    lines = read_text(path).splitlines()
    header = lines[0].split("\t") if lines else []
    if "id" not in header or "accuracy" not in header:
        raise DataError(str(path), f"missing column(s) id/accuracy; found {header}")
    i_id, i_acc = header.index("id"), header.index("accuracy")
    for n, line in enumerate(lines[1:], start=2):
        cols = line.split("\t")
        if len(cols) != len(header):
            raise DataError(str(path), f"expected {len(header)} tab-separated fields, found {len(cols)}", row=n)
        gold[cols[i_id]] = cols[i_acc]
    return gold


def read_semeval(root: str | Path, corpus: str = "sciEntsBank", ways: int = 2,
                 skip_invalid: bool = False) -> ScoringDataset:
    """Train + unseen-answers test of one corpus from the shared layout.

    2-way: both corpora (leocomelli_2way). 3-way/5-way: Beetle only (zesch); its 3-way test labels come
    from the official gold table; 5-way test labels are not public, so the 5-way set has no test split.
    """
    root = Path(root)
    if corpus not in CORPORA:
        raise DataError(str(root), f"unknown corpus {corpus!r}; choose one of {CORPORA}")
    task = task_spec(corpus, ways)
    if ways == 2:
        base = root / "leocomelli_2way"
        train = read_semeval_dir(base / "training/2way" / corpus, task, "train", skip_invalid=skip_invalid)
        test = read_semeval_dir(base / "test/2way" / corpus / "test-unseen-answers", task, "test",
                                skip_invalid=skip_invalid)
        return concat([train, test], task.name)
    if corpus != "beetle":
        raise DataError(str(root), f"{ways}-way labels exist here for Beetle only, not {corpus}")
    base = root / "zesch_beetle_5way_3way_2way"
    parts = [read_semeval_dir(base / "train/beetle" / _WAY_DIR[ways], task, "train", skip_invalid=skip_invalid)]
    if ways == 3:
        gold = _read_gold_table(root / "ashudeep_beetle_gold/testGold-UA.txt")
        parts.append(read_semeval_dir(base / "test/beetle/threeWay", task, "test", gold=gold,
                                      skip_invalid=skip_invalid, test_set="unseen-answers"))
    return concat(parts, task.name)
