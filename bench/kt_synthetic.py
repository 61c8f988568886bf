"""A synthetic item-level knowledge-tracing folder: long sequences over many item ids with an item-to-skill map,
the shape of a platform's own logs (no such data is in the shared data; ASSISTments 2009 here is skill level).

    .venv/bin/python -m bench.kt_synthetic --out runs/kt_synthetic/data [--learners 230 --test-learners 100
        --items 1200 --skills 80 --min-attempts 40 --max-attempts 1180 --seed 0]
    .venv/bin/raykd kt --config configs/kt_quick.yaml --set data.path=$PWD/runs/kt_synthetic/data

Each item belongs to a skill and has its own difficulty; a learner's chance on a skill grows with practice on it
and levels off: P(correct) = sigmoid(ability[s] + 1.5 (1 - exp(-practice[s] / 20)) - 0.75 - difficulty[q]).
Items carry signal a skill-level model cannot see (on 60 learners of 400 attempts over 300 items and 6 skills the
true probabilities rank the answers at about 0.82 AUC, their skill-level part at about 0.73).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def write_item_level_folder(folder: Path, learners: int, attempts: int, items: int, skills: int, seed: int,
                            test_learners: int | None = None, min_attempts: int | None = None) -> None:
    """`*_train.csv`, `*_test.csv` (3-line files whose ids are items 1..items) and `*_qid_sid` (with a header)."""
    rng = np.random.default_rng(seed)
    skill_of = rng.integers(1, skills + 1, items)
    difficulty = rng.normal(0, 1.0, items)
    folder.mkdir(parents=True)

    def sequences(n: int) -> str:
        out = []
        for _ in range(n):
            ability, practice = rng.normal(0, 1, skills + 1), np.zeros(skills + 1)
            length = attempts if min_attempts is None else int(rng.integers(min_attempts, attempts + 1))
            ids, right = rng.integers(0, items, length), []
            for q in ids:
                s = skill_of[q]
                p = 1 / (1 + np.exp(-(ability[s] + 1.5 * (1 - np.exp(-practice[s] / 20)) - 0.75 - difficulty[q])))
                right.append(int(rng.random() < p))
                practice[s] += 1
            out += [str(length), ",".join(str(q + 1) for q in ids), ",".join(map(str, right))]
        return "\n".join(out) + "\n"

    (folder / "synthetic_train.csv").write_text(sequences(learners))
    (folder / "synthetic_test.csv").write_text(sequences(learners // 2 if test_learners is None else test_learners))
    (folder / "synthetic_qid_sid").write_text("qid\tsid\n" + "".join(f"{q + 1}\t{skill_of[q]}\n"
                                                                   for q in range(items)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="a folder that does not exist yet")
    parser.add_argument("--learners", type=int, default=230)
    parser.add_argument("--test-learners", type=int, default=100)
    parser.add_argument("--items", type=int, default=1200)
    parser.add_argument("--skills", type=int, default=80)
    parser.add_argument("--min-attempts", type=int, default=40)
    parser.add_argument("--max-attempts", type=int, default=1180)
    parser.add_argument("--seed", type=int, default=0)
    a = parser.parse_args()
    write_item_level_folder(a.out, a.learners, a.max_attempts, a.items, a.skills, a.seed, a.test_learners,
                            a.min_attempts)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
