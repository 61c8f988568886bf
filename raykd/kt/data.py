"""Knowledge-tracing sequences in the "3-line" format, validated, split by learner and digested.

Each learner (or sequence chunk) is three lines:

    4                 number of attempts
    12,12,7,31        skill ids
    0,1,1,1           correct (0/1)

Trailing commas and blank lines are accepted (the DKT files carry them). The ids are skills, or items (questions)
when the folder has an item-to-skill map (`qid<TAB>sid`, as public KT sets ship it: a map where every item is its
own skill means the ids are skills). Name files have one `id<TAB>name` or `name<TAB>id` per line; any of these
files may start with a header line. Every problem is reported with its file, line and reason; with
`skip_invalid` the sequence is dropped and the problem kept in `KTDataset.problems`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from raykd.data.dataset import Problem
from raykd.errors import DataError


@dataclass
class Sequence:
    """One learner's attempts, in order."""

    skills: np.ndarray  # int64 skill ids
    correct: np.ndarray  # int64 0/1

    def __len__(self) -> int:
        return len(self.skills)


@dataclass
class KTDataset:
    """Train and test sequences of one folder, the ids they use, and the names and item-to-skill map when the
    folder has them. `Sequence.skills` holds the file's ids: skills, or items when `item_skill` is set."""

    name: str
    train: list[Sequence]
    test: list[Sequence]
    skill_names: dict[int, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    item_skill: dict[int, int] = field(default_factory=dict)  # item id -> skill id; empty: the ids are skills
    item_names: dict[int, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # the side files read: kind -> file name

    @property
    def ids(self) -> list[int]:
        """Every id the sequences use, sorted."""
        return sorted({int(s) for seq in self.train + self.test for s in seq.skills})

    @property
    def skill_ids(self) -> list[int]:
        """Every skill the data, its item map or the name file knows, sorted."""
        if self.item_skill:
            return sorted({self.item_skill[i] for i in self.ids} | set(self.skill_names))
        return sorted(set(self.ids) | set(self.skill_names))

    @property
    def item_ids(self) -> list[int]:
        """The items the sequences use (empty when the ids are skills)."""
        return self.ids if self.item_skill else []

    def digest(self) -> str:
        """sha256 over every sequence and skill name: the data's identity in lineage."""
        h = hashlib.sha256()
        for split, seqs in (("train", self.train), ("test", self.test)):
            h.update(split.encode())
            for seq in seqs:
                h.update(np.int64(len(seq)).tobytes() + seq.skills.astype(np.int64).tobytes()
                         + seq.correct.astype(np.int8).tobytes())
        for k in sorted(self.skill_names):
            h.update(f"{k}\t{self.skill_names[k]}\n".encode())
        for k in sorted(self.item_skill):  # (absent for skill-level data: its digest is unchanged)
            h.update(f"item {k}\t{self.item_skill[k]}\n".encode())
        return h.hexdigest()

    def summary(self) -> dict[str, object]:
        def part(seqs: list[Sequence]) -> dict[str, object]:
            n = sum(len(s) for s in seqs)
            right = sum(int(s.correct.sum()) for s in seqs)
            skills = {int(k) for s in seqs for k in s.skills}
            lengths = [len(s) for s in seqs] or [0]
            return {"sequences": len(seqs), "interactions": n, "skills": len(skills),
                    "correct_rate": right / n if n else float("nan"), "max_length": max(lengths),
                    "median_length": float(np.median(lengths))}

        return {"name": self.name, "train": part(self.train), "test": part(self.test),
                "skills": len(self.skill_ids), "named_skills": len(self.skill_names),
                "items": len(self.item_ids), "named_items": len(self.item_names),
                "files": self.files, "problems": len(self.problems)}


class _Invalid(Exception):
    def __init__(self, line: int, reason: str):
        self.line, self.reason = line, reason


def _ints(text: str, line: int, what: str) -> list[int]:
    items = [t.strip() for t in text.strip().rstrip(",").split(",")]
    if items == [""]:
        return []
    try:
        return [int(t) for t in items]
    except ValueError:
        bad = next(t for t in items if not t.lstrip("-").isdigit())
        raise _Invalid(line, f"{what} must be integers, got {bad!r}") from None


def read_sequences(path: str | Path, known_skills: set[int] | None = None,
                   skip_invalid: bool = False) -> tuple[list[Sequence], list[Problem]]:
    """Sequences of one 3-line file. `known_skills`: ids outside it are errors (a name file, or the skills
    seen in training when a model reads new data)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(path, f"cannot read: {e}") from None
    numbered = [(i + 1, ln) for i, ln in enumerate(lines) if ln.strip()]
    if not numbered:
        raise DataError(path, "no sequences (the file is empty)")
    sequences: list[Sequence] = []
    problems: list[Problem] = []
    for start in range(0, len(numbered), 3):
        group = numbered[start:start + 3]
        try:
            sequences.append(_parse_group(group, known_skills))
        except _Invalid as e:
            if not skip_invalid:
                raise DataError(path, f"line {e.line}: {e.reason}") from None
            problems.append(Problem(str(path), e.line, e.reason, unit="line"))
    if not sequences:
        raise DataError(path, f"no valid sequences ({len(problems)} invalid)")
    return sequences, problems


def _parse_group(group: list[tuple[int, str]], known: set[int] | None) -> Sequence:
    first = group[0][0]
    if len(group) < 3:
        raise _Invalid(first, f"a sequence needs 3 lines (length, skills, correct), found "
                              f"{len(group)} at the end of the file")
    (ln_n, n_text), (ln_s, s_text), (ln_c, c_text) = group
    try:
        n = int(n_text.strip().rstrip(","))
    except ValueError:
        raise _Invalid(ln_n, f"expected the number of attempts, got {n_text.strip()[:40]!r} "
                              "(is a line missing above?)") from None
    if n < 1:
        raise _Invalid(ln_n, f"empty sequence (length {n})")
    skills = _ints(s_text, ln_s, "skill ids")
    correct = _ints(c_text, ln_c, "correctness values")
    if len(skills) != n:
        raise _Invalid(ln_s, f"{len(skills)} skill ids but line {ln_n} says {n} attempts")
    if len(correct) != n:
        raise _Invalid(ln_c, f"{len(correct)} correctness values but line {ln_n} says {n} attempts")
    bad = [c for c in correct if c not in (0, 1)]
    if bad:
        raise _Invalid(ln_c, f"correctness must be 0 or 1, got {bad[0]}")
    negative = [s for s in skills if s < 0]
    if negative:
        raise _Invalid(ln_s, f"skill ids must be >= 0, got {negative[0]}")
    if known is not None:
        unknown = sorted({s for s in skills if s not in known})
        if unknown:
            raise _Invalid(ln_s, f"unknown id(s) {unknown[:5]} (not in the skill list or the item map)")
    return Sequence(np.asarray(skills, dtype=np.int64), np.asarray(correct, dtype=np.int64))


def _table_lines(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header, [(line number, tab-separated fields)]) of a small id table: a first line in which no field is an
    integer is the header, naming the columns ([] when there is none)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(path, f"cannot read: {e}") from None
    rows = [(i, [f.strip() for f in line.split("\t")]) for i, line in enumerate(lines, start=1) if line.strip()]
    header = []
    if rows and not any(f.isdigit() for f in rows[0][1]):
        header, rows = [f.lower() for f in rows[0][1]], rows[1:]
    if not rows:
        raise DataError(path, f"no id rows after the header {chr(9).join(header)[:60]!r}" if header else
                        "no rows (the file is empty)")
    return header, rows


def read_names(path: str | Path) -> dict[int, str]:
    """`id<TAB>name` or `name<TAB>id` per line (whichever field is an integer is the id), after an optional
    header: skill names or item names."""
    path = Path(path)
    names: dict[int, str] = {}
    for i, fields in _table_lines(path)[1]:
        ids = [f for f in fields if f.isdigit()]
        texts = [f for f in fields if f and not f.isdigit()]
        if len(fields) < 2 or len(ids) != 1 or len(texts) != 1:
            raise DataError(path, f"line {i}: expected 'id<TAB>name', got {chr(9).join(fields)[:60]!r}")
        sid = int(ids[0])
        if sid in names and names[sid] != texts[0]:
            raise DataError(path, f"line {i}: id {sid} is named twice ({names[sid]!r} and {texts[0]!r})")
        names[sid] = texts[0]
    return names


def read_item_skills(path: str | Path) -> dict[int, int]:
    """An item-to-skill map, `item<TAB>skill` per line. A header names the order (`sid<TAB>qid`, `skill<TAB>item`,
    `kc<TAB>question` put the skill first); without one the item comes first, as in the `qid_sid` files public
    sets ship."""
    path = Path(path)
    header, rows = _table_lines(path)
    skill_first = len(header) == 2 and header[0].startswith(("s", "kc")) and not header[1].startswith(("s", "kc"))
    out: dict[int, int] = {}
    for i, fields in rows:
        if len(fields) != 2 or not all(f.isdigit() for f in fields):
            raise DataError(path, f"line {i}: expected 'item<TAB>skill' ids, got {chr(9).join(fields)[:60]!r}")
        item, skill = (int(fields[1]), int(fields[0])) if skill_first else (int(fields[0]), int(fields[1]))
        if item in out and out[item] != skill:
            raise DataError(path, f"line {i}: item {item} is mapped to two skills ({out[item]} and {skill})")
        out[item] = skill
    return out


def _one(folder: Path, pattern: str, what: str, required: bool) -> Path | None:
    found = sorted(p for p in folder.glob(pattern) if p.is_file())
    if len(found) > 1:
        raise DataError(folder, f"several {what} files match {pattern!r}: {[p.name for p in found]}; name one "
                                "in the config")
    if not found and required:
        raise DataError(folder, f"no {what} file matches {pattern!r}")
    return found[0] if found else None


def load_kt_folder(path: str | Path, train_file: str | None = None, test_file: str | None = None,
                   skill_names: str | None = None, skip_invalid: bool = False, item_skills: str | None = None,
                   item_names: str | None = None) -> KTDataset:
    """A folder with a train and a test 3-line file (`*train*`, `*test*` unless named) and, optionally, a skill-name
    file (`*skill_mapping*` or `*sname_sid*`), an item-to-skill map (`*qid_sid*`) and an item-name file
    (`*qname_qid*`); `""` for any of them reads none."""
    from raykd.data import resolve_data_path

    folder = resolve_data_path(str(path))
    if not folder.is_dir():
        raise DataError(folder, "not a folder (a knowledge-tracing dataset is a folder with train and test files)")
    train = folder / train_file if train_file else _one(folder, "*train*", "train", True)
    test = folder / test_file if test_file else _one(folder, "*test*", "test", True)
    found = {key: folder / given if given else None if given == "" else
             next((f for f in (_one(folder, p, key, False) for p in patterns) if f), None)
             for key, given, patterns in (("skill-name", skill_names, ("*skill_mapping*", "*sname_sid*")),
                                          ("item-to-skill", item_skills, ("*qid_sid*",)),
                                          ("item-name", item_names, ("*qname_qid*", "*qid_qname*")))}
    names = read_names(found["skill-name"]) if found["skill-name"] else {}
    mapping = read_item_skills(found["item-to-skill"]) if found["item-to-skill"] else {}
    qnames = read_names(found["item-name"]) if found["item-name"] else {}
    # The item map or the skill list (a skill-name file) is the list of ids; without either, any id is one (a
    # test id never seen in training still is: the models give it their base rate).
    known = set(mapping) if mapping else (set(names) if names else None)
    files = {key: f.name for key, f in found.items() if f}
    if all(k == v for k, v in mapping.items()):  # no map, or every item its own skill: the ids are skills
        if mapping:
            files["item-to-skill"] += " (every item its own skill: the ids are skills)"
        mapping, names, qnames = {}, names or qnames, {}
    train_seqs, p1 = read_sequences(train, known, skip_invalid)
    test_seqs, p2 = read_sequences(test, known, skip_invalid)
    return KTDataset(folder.name, train_seqs, test_seqs, names, p1 + p2, mapping, qnames, files)


def looks_like_kt(path: str | Path) -> bool:
    """A folder whose `*train*` file starts with a bare attempt count (the 3-line format)."""
    from raykd.data import resolve_data_path

    try:
        folder = resolve_data_path(str(path))
        train = sorted(p for p in folder.glob("*train*") if p.is_file()) if folder.is_dir() else []
        with open(train[0], encoding="utf-8") as f:
            return bool(train) and f.readline().strip().rstrip(",").isdigit()
    except (IndexError, OSError, UnicodeDecodeError, ValueError):
        return False


def split_learners(n: int, validation: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/validation indices over learners (each sequence stays whole in one split)."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * validation))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def windows(seqs: list[Sequence], max_length: int) -> list[Sequence]:
    """Long sequences cut into consecutive windows of at most `max_length` attempts (the usual KT practice);
    a window of one attempt has nothing to predict and is dropped."""
    out = []
    for s in seqs:
        for i in range(0, len(s), max_length):
            if len(s.skills[i:i + max_length]) > 1:
                out.append(Sequence(s.skills[i:i + max_length], s.correct[i:i + max_length]))
    return out
