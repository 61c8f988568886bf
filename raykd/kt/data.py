"""Knowledge-tracing sequences in the "3-line" format, validated, split by learner and digested.

Each learner (or sequence chunk) is three lines:

    4                 number of attempts
    12,12,7,31        skill ids
    0,1,1,1           correct (0/1)

Trailing commas and blank lines are accepted (the DKT files carry them). A skill-name file, when present, has one
`id<TAB>name` or `name<TAB>id` per line. Every problem is reported with its file, line and reason; with
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
    """Train and test sequences of one folder, the skill ids they use, skill names when the folder has them."""

    name: str
    train: list[Sequence]
    test: list[Sequence]
    skill_names: dict[int, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def skill_ids(self) -> list[int]:
        """Every skill id the data or the name file knows, sorted."""
        seen = {int(s) for seq in self.train + self.test for s in seq.skills}
        return sorted(seen | set(self.skill_names))

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
                "problems": len(self.problems)}


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
            raise _Invalid(ln_s, f"unknown skill id(s) {unknown[:5]} (not in the skill list)")
    return Sequence(np.asarray(skills, dtype=np.int64), np.asarray(correct, dtype=np.int64))


def read_skill_names(path: str | Path) -> dict[int, str]:
    """`id<TAB>name` or `name<TAB>id` per line (whichever field is an integer is the id)."""
    path = Path(path)
    names: dict[int, str] = {}
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split("\t")]
        ids = [f for f in fields if f.isdigit()]
        texts = [f for f in fields if f and not f.isdigit()]
        if len(fields) < 2 or len(ids) != 1 or len(texts) != 1:
            raise DataError(path, f"line {i}: expected 'id<TAB>name', got {line.strip()[:60]!r}")
        sid = int(ids[0])
        if sid in names and names[sid] != texts[0]:
            raise DataError(path, f"line {i}: skill {sid} is named twice ({names[sid]!r} and {texts[0]!r})")
        names[sid] = texts[0]
    if not names:
        raise DataError(path, "no skill names (the file is empty)")
    return names


def _one(folder: Path, pattern: str, what: str, required: bool) -> Path | None:
    found = sorted(p for p in folder.glob(pattern) if p.is_file())
    if len(found) > 1:
        raise DataError(folder, f"several {what} files match {pattern!r}: {[p.name for p in found]}; name one "
                                "in the config")
    if not found and required:
        raise DataError(folder, f"no {what} file matches {pattern!r}")
    return found[0] if found else None


def load_kt_folder(path: str | Path, train_file: str | None = None, test_file: str | None = None,
                   skill_names: str | None = None, skip_invalid: bool = False) -> KTDataset:
    """A folder with a train and a test 3-line file (`*train*`, `*test*` unless named) and, optionally, a skill-name
    file (`*skill_mapping*` unless named; `skill_names: ""` reads none)."""
    from raykd.data import resolve_data_path

    folder = resolve_data_path(str(path))
    if not folder.is_dir():
        raise DataError(folder, "not a folder (a knowledge-tracing dataset is a folder with train and test files)")
    train = folder / train_file if train_file else _one(folder, "*train*", "train", True)
    test = folder / test_file if test_file else _one(folder, "*test*", "test", True)
    names_path = (folder / skill_names if skill_names else
                  None if skill_names == "" else _one(folder, "*skill_mapping*", "skill-name", False))
    names = read_skill_names(names_path) if names_path else {}
    # With a name file, it is the skill list; without one, any id is a skill (a test skill never seen in
    # training is still a skill: the models give it their base rate).
    known = set(names) if names else None
    train_seqs, p1 = read_sequences(train, known, skip_invalid)
    test_seqs, p2 = read_sequences(test, known, skip_invalid)
    return KTDataset(folder.name, train_seqs, test_seqs, names, p1 + p2)


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
