"""Does human time spent on `raykd review-queue`'s picks buy a better next model than the same time spent at random?

    .venv/bin/python -m bench.review_sim --workdir runs/review_sim [--sets 1] [--seeds 0 1 2] [--held 1000]
                                         [--graded 300]

Per ASAP-SAS set and seed, as a school would live it:
1. 1,000 training responses (drawn with the seed) are held back as "unscored"; a student (no KD, the distill
   defaults) learns from the rest and is calibrated on validation (model M0);
2. a person grades 300 of the held-back responses: those `raykd review-queue` puts first for M0 (calibrated
   uncertainty weighted by how typical the response is, raykd.review_queue), or 300 drawn at random;
3. their scores (the data's Score1 stands in for the person) go through `raykd feedback` (checked against the
   data, recorded as a corrections version) and the next student learns from the data with that version applied
   (raykd.feedback.apply_corrections), same config and seed;
4. each student is scored on the set's test split (QWK, bootstrap 95% interval); M0 and a student that had all
   1,000 graded bound the range.

Reported: per set and seed, the test QWK of each student; over seeds, the mean gain of the queue over random with
a t interval. Target (bench/targets.py REVIEW_QUEUE_GAIN): at least +0.01. Results go to `--workdir/review_sim.json`
and `review_sim.md`; each (set, seed) is cached, so an interrupted run picks up where it stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.targets import REVIEW_QUEUE_GAIN
from raykd import tables
from raykd.data.config import DataConfig
from raykd.data.dataset import ScoringDataset
from raykd.data.preparation import PreparedData, prepare_dataset, write_model_data
from raykd.io import write_text_atomic

ARMS = ("start", "queue", "random", "all")  # M0, the queue's 300, random 300, all held back graded


def hold_back(ds: ScoringDataset, n: int, seed: int) -> tuple[ScoringDataset, pd.DataFrame]:
    """`ds` with `n` training responses drawn with `seed` made unscored, and those responses with their gold."""
    f = ds.frame.copy()
    train = f.index[(f["split"] == "train") & f["y"].notna()]
    held = np.random.default_rng(seed).choice(train, size=min(n, len(train) - 50), replace=False)
    gold = f.loc[held, ["id", "task", "text", "y"]].copy()
    f.loc[held, "y"] = None
    f.loc[held, "split"] = "unlabelled"
    f["y"] = f["y"].astype(object)
    return ScoringDataset(ds.name, dict(ds.tasks), f, []), gold


def fit_and_test(ds: ScoringDataset, seed: int, out: Path, data: DataConfig) -> tuple[Path, dict[str, float]]:
    """A no-KD student on `ds`'s scored train responses, calibrated on validation, saved at `out` with its data
    record; its test QWK with a bootstrap interval."""
    from raykd.config import ReviewConfig
    from raykd.distill.config import DistillConfig, StudentConfig
    from raykd.distill.train import calibrate, evaluate_fit, fit_student, heldout_probabilities, save_fit
    from raykd.heads import TaskLayout

    f = ds.frame
    layout = TaskLayout.of(ds.tasks)
    validation = f[f["split"] == "validation"]
    fit = fit_student(StudentConfig(), DistillConfig(kd_weight=0.0, seed=seed, threads=2),
                      f[(f["split"] == "train") & f["y"].notna()], validation, layout)
    fit = calibrate(fit, heldout_probabilities(fit, validation), ReviewConfig(), "validation")
    save_fit(fit, out)
    write_model_data(out, PreparedData("review_sim", str(out.parent), ds.digest(), len(ds), data))
    scores = evaluate_fit(fit, f[f["split"] == "test"], intervals=True)
    (task,) = layout.names
    low, high = scores.intervals[task]
    return out, {"qwk": float(scores.tasks[task]["qwk"]), "low": float(low), "high": float(high),
                 "train": int(((f["split"] == "train") & f["y"].notna()).sum())}


def graded(ds: ScoringDataset, gold: pd.DataFrame, ids: list[str], model: Path, folder: Path) -> ScoringDataset:
    """`ds` after a person graded `ids` (their gold scores), recorded through `raykd feedback`."""
    from raykd.feedback import apply_corrections, run_feedback

    picked = gold.set_index(gold["id"].astype(str)).loc[ids]
    spec = ds.tasks[picked["task"].iloc[0]]
    path = folder / "corrections.csv"
    pd.DataFrame({"id": ids, "task": picked["task"], "score": [spec.labels[int(y)] for y in picked["y"]],
                  "grader": "gold Score1"}).to_csv(path, index=False)
    version = run_feedback(str(model), path, store=folder / "store",
                           tracking_uri=f"sqlite:///{folder.parent / 'mlflow.db'}")
    return apply_corrections(ds, version.folder)


def run_one(essay_set: int, seed: int, held: int, count: int, folder: Path) -> dict[str, dict[str, float]]:
    from raykd.review_queue import review_queue

    folder.mkdir(parents=True, exist_ok=True)
    data = DataConfig(options={"sets": [essay_set]})
    ds, gold = hold_back(prepare_dataset(data), held, seed)
    model, start = fit_and_test(ds, seed, folder / "start", data)
    unscored = folder / "unscored.csv"  # the held-back responses as a school would hand them in
    gold[["id", "task", "text"]].to_csv(unscored, index=False)
    queue = review_queue(str(model), str(folder / "queue.csv"), input_path=str(unscored), count=count)
    picks = {"queue": queue["id"].astype(str).tolist(),
             "random": list(np.random.default_rng(seed + 1000).choice(gold["id"].astype(str), count, replace=False)),
             "all": gold["id"].astype(str).tolist()}
    out = {"start": start}
    for arm, ids in picks.items():
        arm_dir = folder / arm
        arm_dir.mkdir(exist_ok=True)
        _, out[arm] = fit_and_test(graded(ds, gold, ids, model, arm_dir), seed, arm_dir / "model", data)
    unscored.unlink()  # responses are children's data: nothing of them stays in the workdir
    return out


def t_interval(values: list[float]) -> tuple[float, float, float]:
    from scipy import stats

    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return float(v.mean()), float("nan"), float("nan")
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return float(v.mean()), float(v.mean() - half), float(v.mean() + half)


def markdown(results: dict[str, dict[str, dict[str, float]]], held: int, count: int) -> str:
    rows = []
    for key, arms in results.items():
        rows.append([key, *[f"{arms[a]['qwk']:.3f} [{arms[a]['low']:.3f}, {arms[a]['high']:.3f}]" for a in ARMS],
                     f"{arms['queue']['qwk'] - arms['random']['qwk']:+.3f}"])
    gains = [r["queue"]["qwk"] - r["random"]["qwk"] for r in results.values()]
    mean, low, high = t_interval(gains)
    verdict = "met" if mean >= REVIEW_QUEUE_GAIN else "MISSED"
    if mean >= REVIEW_QUEUE_GAIN and not low > 0:
        verdict = "met on the mean, but the interval includes no gain: not shown beyond noise"
    by_set: dict[str, list[float]] = {}
    for key, gain in zip(results, gains, strict=True):
        by_set.setdefault(key.split("/")[0], []).append(gain)
    per_set = ", ".join(f"set {k} {np.mean(v):+.3f}" for k, v in by_set.items())
    return "\n".join([
        f"# Review queue against random grading ({held} held back, {count} graded)", "",
        tables.markdown(["set/seed", "M0 (before grading)", f"queue {count}", f"random {count}", f"all {held}",
                         "queue - random"], rows), "",
        f"Mean gain of the queue over random: {mean:+.4f} (95% t interval [{low:+.4f}, {high:+.4f}], "
        f"{len(gains)} runs; {sum(g > 0 for g in gains)} of them positive); target +{REVIEW_QUEUE_GAIN}: {verdict}.",
        "", f"Mean gain per set over its seeds: {per_set}.", ""])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="runs/review_sim")
    parser.add_argument("--sets", type=int, nargs="+", default=[1])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--held", type=int, default=1000)
    parser.add_argument("--graded", type=int, default=300)
    args = parser.parse_args()
    work = Path(args.workdir).resolve()
    results: dict[str, dict[str, dict[str, float]]] = {}
    t0 = time.time()
    for essay_set in args.sets:
        for seed in args.seeds:
            key, folder = f"{essay_set}/{seed}", work / f"set{essay_set}_seed{seed}"
            cached = folder / "result.json"
            if cached.is_file():
                results[key] = json.loads(cached.read_text())
                continue
            results[key] = run_one(essay_set, seed, args.held, args.graded, folder)
            write_text_atomic(cached, json.dumps(results[key], indent=2))
            print(f"[review_sim] set {essay_set} seed {seed}: " + ", ".join(
                f"{a} {results[key][a]['qwk']:.3f}" for a in ARMS) + f" ({time.time() - t0:.0f}s)", flush=True)
    report = markdown(results, args.held, args.graded)
    write_text_atomic(work / "review_sim.md", report)
    write_text_atomic(work / "review_sim.json", json.dumps({"held": args.held, "graded": args.graded,
                                                            "results": results}, indent=2))
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())


