"""SciEntsBank 2-way with whole questions held out: does a student score questions it never saw?

    .venv/bin/python -m bench.semeval_lqo --workdir runs/bench_lqo [--folds 5] [--teacher-epochs 1] [--only 2 3 4]

The SciEntsBank training questions are split into `--folds` groups (scikit-learn's GroupKFold on the question).
For each fold, the pipeline runs as a user would run it on a new question set: a question-aware MiniLM teacher
(`model.head: pair`: the answer and the reference answers encoded apart and compared; Ray Train + DeepSpeed on
2 workers, 8 responses each per step) -> soft labels -> question-aware
LSTM students, with and without the answer/reference overlap tokens (raykd.inputs), with the overlap tokens
on the teacher's word pieces and embeddings (raykd.students.embeddings), and the pair student that reads the
answer against the reference answers (raykd.students.pair), each with KD and no-KD.
Validation is carved from the training questions; every response of the held-out questions is test.

Reported per fold and over folds: accuracy with a bootstrap 95% interval, the majority rate of the held-out
responses, and whether each student is within 0.03 of the teacher and above the majority rate. Results go to
`--workdir/lqo.json` and `lqo.md`. Each fold's results are cached (an interrupted run picks up where it stopped),
and so is its teacher, kept with the config it was trained from: a rerun with other students (delete the folds'
result.json) trains only the students, on the same teachers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.run_all import distill_stage, teacher_stage
from raykd import tables
from raykd.data import data_dir, read_semeval
from raykd.errors import RaykdError
from raykd.io import write_text_atomic
from raykd.metrics import bootstrap_interval

TASK = "scientsbank_2way"
STUDENTS = {
    "lstm_q": {"arch": "lstm", "per_task": True, "include_question": True, "vocab_size": 4000},
    "lstm_q_overlap": {"arch": "lstm", "per_task": True, "include_question": True, "overlap": True,
                       "vocab_size": 4000},
    # The teacher's word pieces and embeddings: the meaning of words the training questions never used.
    "lstm_q_overlap_wp": {"arch": "lstm", "per_task": True, "include_question": True, "overlap": True,
                          "tokenizer": "wordpiece", "init_embeddings": "teacher", "vocab_size": 4000},
    # The response read against the reference answers (raykd.students.pair), on the teacher's pieces.
    "pair_overlap_wp": {"arch": "pair", "per_task": True, "overlap": True, "tokenizer": "wordpiece",
                        "init_embeddings": "teacher", "vocab_size": 4000, "embed_dim": 32, "hidden": 64},
}


def fold_files(workdir: Path, folds: int) -> tuple[list[Path], list[str]]:
    """One generic-format file per fold: the held-out questions' responses as `test`, the rest `train`."""
    from sklearn.model_selection import GroupKFold

    ds = read_semeval(data_dir() / "semeval2013_task7", "sciEntsBank", 2)
    f = ds.frame[(ds.frame["split"] == "train") & ds.frame["y"].notna()].reset_index(drop=True)
    labels = list(ds.tasks[TASK].labels)
    frame = pd.DataFrame({"id": f["id"], "text": f["text"], "label": [labels[int(y)] for y in f["y"]],
                          "question": f["question"], "reference": f["reference"]})
    paths = []
    for k, (_, held) in enumerate(GroupKFold(n_splits=folds).split(frame, groups=frame["question"])):
        path = workdir / f"fold{k}.parquet"
        if not path.exists():
            split = np.full(len(frame), "train", dtype=object)
            split[held] = "test"
            tmp = path.with_suffix(".tmp")
            frame.assign(split=split).to_parquet(tmp, index=False)
            tmp.replace(path)
        paths.append(path)
    return paths, labels


def teacher_config(path: Path, labels: list[str], epochs: int) -> dict[str, Any]:
    columns = {"text": "text", "id": "id", "label": "label", "question": "question", "reference": "reference",
               "split": "split", "task_name": TASK}
    return {
        "name": f"lqo-teacher-{path.stem}",
        "data": {"path": str(path), "format": "generic", "options": {"columns": columns, "labels": labels},
                 "validation": 0.1, "seed": 0},
        # The pair head compares the answer with the reference answers; a low body learning rate keeps the
        # sentence encoder's notion of similarity, which is what carries to questions never seen (README).
        "model": {"kind": "encoder", "name_or_path": "minilm", "max_length": 128, "include_question": True,
                  "head": "pair"},
        "lora": {"enabled": False},
        "train": {"epochs": epochs, "batch_size": 8, "lr": 2.0e-5, "head_lr": 1.0e-3, "weight_decay": 0.01,
                  "max_grad_norm": 1.0, "betas": [0.9, 0.999], "log_every": 100},
        "deepspeed": {"zero_stage": 2},
        "scaling": {"num_workers": 2, "cpus_per_worker": 0.5},
        "export": {"batch_size": 64, "concurrency": 2},
    }


def fold_teacher(cfg: dict[str, Any], out: Path, tracking: str) -> Any:
    """The fold's teacher: trained, or the finished one in `out` when it was trained from this very config
    (`teacher_config.json` beside it), so that new students can be measured on the same teachers."""
    from raykd.teacher.job import TeacherOutput

    recorded = out / "teacher_config.json"
    if recorded.is_file() and json.loads(recorded.read_text()) == cfg:
        try:
            return TeacherOutput.load(out).result
        except RaykdError:
            pass  # unfinished: train it again
    result = teacher_stage(cfg, out, tracking)
    write_text_atomic(recorded, json.dumps(cfg, indent=2))
    return result


def accuracy_row(name: str, y: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    low, high = bootstrap_interval("accuracy", y, pred)
    return {"model": name, "accuracy": float((y == pred).mean()), "low": low, "high": high}


def run_fold(path: Path, labels: list[str], work: Path, tracking: str, epochs: int) -> dict[str, Any]:
    from raykd.scoring import load_scorer
    from raykd.teacher.export import read_soft_labels

    saved = work / "result.json"
    if saved.exists():
        return json.loads(saved.read_text())
    t0 = time.time()
    teacher = fold_teacher(teacher_config(path, labels, epochs), work / "teacher", tracking)
    distill = distill_stage(work / "teacher", STUDENTS, {"kd_weight": 0.5, "temperature": 2.0, "epochs": 20,
                                                          "patience": 3}, work / "distill", tracking)
    soft, _ = read_soft_labels(teacher.soft_labels)
    test = soft[soft["split"] == "test"]
    data = pd.read_parquet(path).set_index("id").loc[test["id"]]
    y = np.array([labels.index(v) for v in data["label"]])
    rows = [accuracy_row("teacher", y, test[[f"p_{lab}" for lab in labels]].to_numpy().argmax(1))]
    for s in distill.students:
        scorer = load_scorer(str(work / "distill" / "students" / s.group / s.variant))
        probs = scorer.predict_proba(data["text"].tolist(), [TASK] * len(data), data["question"].tolist(),
                                     data["reference"].tolist())
        rows.append(accuracy_row(f"{s.family} {s.variant}", y, np.stack(probs).argmax(1)))
    result = {"fold": path.stem, "test_responses": len(y), "test_questions": int(data["question"].nunique()),
              "majority": float(np.bincount(y).max() / len(y)), "rows": rows, "seconds": time.time() - t0}
    write_text_atomic(saved, json.dumps(result, indent=2))
    return result


def summary(results: list[dict[str, Any]]) -> str:
    models = [r["model"] for r in results[0]["rows"]]
    header = ["fold", "questions", "responses", "majority"] + models
    body = []
    for res in results:
        acc = {r["model"]: r for r in res["rows"]}
        body.append([res["fold"], res["test_questions"], res["test_responses"], f"{res['majority']:.3f}"]
                    + [f"{acc[m]['accuracy']:.3f} [{acc[m]['low']:.3f}, {acc[m]['high']:.3f}]" for m in models])
    means = {m: float(np.mean([next(r["accuracy"] for r in res["rows"] if r["model"] == m) for res in results]))
             for m in models}
    body.append(["mean", "", "", f"{np.mean([r['majority'] for r in results]):.3f}"]
                + [f"{means[m]:.3f}" for m in models])
    lines = [tables.markdown(header, body), ""]
    for m in models[1:]:
        within = all(next(r["accuracy"] for r in res["rows"] if r["model"] == m)
                     >= next(r["accuracy"] for r in res["rows"] if r["model"] == "teacher") - 0.03 for res in results)
        above = all(next(r["accuracy"] for r in res["rows"] if r["model"] == m) > res["majority"] for res in results)
        lines.append(f"- {m}: within 0.03 of the teacher on every fold: {'met' if within else '**MISSED**'}; "
                     f"above the majority rate on every fold: {'met' if above else '**MISSED**'}")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="runs/bench_lqo")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--teacher-epochs", type=int, default=1)
    parser.add_argument("--max-folds", type=int, help="run only the first N folds (time); the summary says so")
    parser.add_argument("--only", type=int, nargs="+", metavar="K",
                        help="run only these folds (0-based; time); the summary says so")
    args = parser.parse_args()
    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    tracking = f"sqlite:///{work / 'mlflow.db'}"
    paths, labels = fold_files(work, args.folds)
    run = paths[:args.max_folds] if args.max_folds else paths
    if args.only:
        if not set(args.only) <= set(range(len(paths))):
            parser.error(f"--only: folds are 0 to {len(paths) - 1}")
        run = [p for k, p in enumerate(run) if k in args.only]
    results = [run_fold(p, labels, work / p.stem, tracking, args.teacher_epochs) for p in run]
    write_text_atomic(work / "lqo.json", json.dumps(results, indent=2))
    text = summary(results)
    if len(run) < len(paths):
        text += f"\nOnly {len(run)} of the {len(paths)} folds were run ({', '.join(p.stem for p in run)}).\n"
    write_text_atomic(work / "lqo.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
