"""ASAP-SAS (Hewlett short-answer scoring, Kaggle 2012).

Layout read here (as in `$RAYKD_DATA_DIR/asap_sas`):
  gold_train_test_split/{set}_GOLD_{train,test}.csv   Id,EssayText,Score1,Score2 (set from the file name)
  private_leaderboard.tsv                             Id,EssaySet,EssayText (unscored)
  descriptions/essay_{set}_description.txt, _key.txt  prompt text and key elements (read with `prompts=True`)
Score1 is the official score and the label. Each essay set is one ordinal task `asap_{set}`. With `prompts`, each
row carries its set's prompt as `question` and its key elements (sets 1, 5, 6) as `reference`, so models with
`include_question` read what the students were asked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from raykd.data.dataset import MULTICLASS, RawRow, ScoringDataset, TaskSpec, build_dataset, concat
from raykd.data.files import cell, read_table, require_columns
from raykd.errors import DataError

# Score ranges from the ASAP-SAS data description: sets 1, 2, 5, 6 score 0-3, the others 0-2.
MAX_SCORE = {1: 3, 2: 3, 3: 2, 4: 2, 5: 3, 6: 3, 7: 2, 8: 2, 9: 2, 10: 2}
SCIENCE_SETS = (1, 2, 5, 6, 10)
_GOLD = re.compile(r"^(\d+)_GOLD_(train|test)\.csv$")


def task_name(essay_set: int) -> str:
    return f"asap_{essay_set}"


def task_spec(essay_set: int) -> TaskSpec:
    if essay_set not in MAX_SCORE:
        raise ValueError(f"ASAP-SAS has essay sets 1-10, not {essay_set}")
    labels = tuple(str(s) for s in range(MAX_SCORE[essay_set] + 1))
    return TaskSpec(task_name(essay_set), MULTICLASS, labels, ordinal=True)


Prompt = tuple[str | None, str | None]  # (question, reference)


def read_prompt(root: Path, essay_set: int) -> Prompt:
    """The set's prompt (whitespace collapsed) and key elements; a missing description is a DataError."""
    folder = root / "descriptions"
    desc = folder / f"essay_{essay_set}_description.txt"
    if not desc.is_file():
        raise DataError(str(desc), "missing: `prompts` needs each essay set's description file")
    key = folder / f"essay_{essay_set}_key.txt"
    question = " ".join(desc.read_text(encoding="utf-8").split())
    reference = "; ".join(line.strip() for line in key.read_text(encoding="utf-8").splitlines() if line.strip()) \
        if key.is_file() else None
    return question, reference


def _gold_rows(path: Path, essay_set: int, split: str, prompt: Prompt) -> Iterable[RawRow]:
    frame = read_table(path)
    require_columns(frame, ["Id", "EssayText", "Score1"], path)
    for i, rec in enumerate(frame.itertuples(index=False), start=2):
        yield RawRow(
            row=i, id=cell(rec.Id) or "", task=task_name(essay_set),
            text=cell(rec.EssayText) or "", label=cell(rec.Score1) or "", split=split,
            question=prompt[0], reference=prompt[1],
        )


def second_rater_agreement(root: str | Path, ids: Iterable[str]) -> dict[str, float]:
    """Per essay set, the QWK of the second human rater (Score2) against the official score (Score1) over the
    responses `ids` that both scored: the agreement a scorer is held to. Sets with under 2 such responses are
    left out."""
    from sklearn.metrics import cohen_kappa_score

    wanted = {str(i) for i in ids}
    pairs: dict[int, list[pd.DataFrame]] = {}
    for path in sorted((Path(root) / "gold_train_test_split").glob("*_GOLD_*.csv")):
        m = _GOLD.match(path.name)
        frame = read_table(path) if m else None
        if frame is None or "Score2" not in frame.columns:
            continue
        scores = frame.loc[frame["Id"].astype(str).isin(wanted), ["Score1", "Score2"]].apply(pd.to_numeric,
                                                                                            errors="coerce")
        pairs.setdefault(int(m.group(1)), []).append(scores.dropna())
    out = {}
    for essay_set, parts in sorted(pairs.items()):
        both = pd.concat(parts)
        if len(both) >= 2:
            out[task_name(essay_set)] = float(cohen_kappa_score(
                both["Score1"].astype(int), both["Score2"].astype(int), weights="quadratic",
                labels=list(range(MAX_SCORE[essay_set] + 1))))
    return out


def read_asap(
    root: str | Path,
    sets: Iterable[int] | None = None,
    include_unlabelled: bool = False,
    skip_invalid: bool = False,
    prompts: bool = False,
) -> ScoringDataset:
    """Read the scored ASAP-SAS responses (and optionally the unscored private-leaderboard ones); `prompts` adds
    each set's prompt and key elements as the rows' question and reference."""
    root = Path(root)
    gold_dir = root / "gold_train_test_split"
    if not gold_dir.is_dir():
        raise DataError(str(root), "not an ASAP-SAS folder: gold_train_test_split/ is missing")
    wanted = set(sets) if sets is not None else set(MAX_SCORE)
    bad = wanted - set(MAX_SCORE)
    if bad:
        raise DataError(str(root), f"unknown essay set(s) {sorted(bad)}; ASAP-SAS has sets 1-10")
    parts = []
    matches = [(p, _GOLD.match(p.name)) for p in gold_dir.iterdir()]
    files = sorted((int(m.group(1)), m.group(2), p) for p, m in matches if m and int(m.group(1)) in wanted)
    found = set()
    for essay_set, split, path in files:
        found.add(essay_set)
        spec = task_spec(essay_set)
        prompt = read_prompt(root, essay_set) if prompts else (None, None)
        parts.append(
            build_dataset(f"asap_sas:{path.name}", str(path), {spec.name: spec},
                          _gold_rows(path, essay_set, split, prompt), skip_invalid)
        )
    missing = wanted - found if sets is not None else set()
    if missing or not found:
        raise DataError(str(gold_dir), f"no *_GOLD_*.csv files for essay set(s) {sorted(missing or wanted)}")
    if include_unlabelled:
        parts.append(read_asap_unlabelled(root / "private_leaderboard.tsv", found, skip_invalid,
                                          prompts_root=root if prompts else None))
    return concat(parts, "asap_sas")


def read_asap_unlabelled(path: str | Path, sets: Iterable[int] | None = None,
                         skip_invalid: bool = False, prompts_root: Path | None = None) -> ScoringDataset:
    """Unscored ASAP-SAS responses (`Id, EssaySet, EssayText`), split `unlabelled` (with their sets' prompts read
    from `prompts_root` when given)."""
    path = Path(path)
    frame = read_table(path)
    require_columns(frame, ["Id", "EssaySet", "EssayText"], path)
    wanted = set(sets) if sets is not None else set(MAX_SCORE)
    tasks = {task_name(s): task_spec(s) for s in wanted}
    prompt = {s: read_prompt(prompts_root, s) if prompts_root else (None, None) for s in wanted}

    def rows() -> Iterable[RawRow]:
        for i, rec in enumerate(frame.itertuples(index=False), start=2):
            raw_set = cell(rec.EssaySet) or ""
            task = task_name(int(raw_set)) if raw_set.isdigit() else f"asap_{raw_set or '?'}"
            if raw_set.isdigit() and int(raw_set) in MAX_SCORE and int(raw_set) not in wanted:
                continue
            question, reference = prompt.get(int(raw_set), (None, None)) if raw_set.isdigit() else (None, None)
            yield RawRow(row=i, id=cell(rec.Id) or "", task=task, text=cell(rec.EssayText) or "", label=None,
                         split="unlabelled", question=question, reference=reference)

    return build_dataset("asap_sas:unlabelled", str(path), tasks, rows(), skip_invalid)
