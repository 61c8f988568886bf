"""SciEntsBank 2-way with whole questions held out: does a teacher, and a student from it, score questions never seen?

    .venv/bin/python -m bench.semeval_lqo --workdir runs/bench_lqo [--folds 5] [--seeds 3] [--pair-teacher-epochs 1]

The SciEntsBank training questions are split into `--folds` groups (scikit-learn's GroupKFold on the question).
For each fold, the pipeline runs as a user would run it on a new question set:
- the teacher is a stack (raykd.stack, `model.kind: stack`) on what carries from one question to another: how an
  answer meets its reference answers and question under MiniLM and MPNet (cosines, and a logistic model on the
  answer's and closest reference's states, `pair`), the overlap of content words, length; its folds are grouped by
  question, so its forward selection keeps the learners that score questions they never saw. With
  `--pair-teacher-epochs N` (N > 0) the fine-tuned MiniLM pair teacher of earlier runs (`model.head: pair`, Ray
  Train + DeepSpeed on 2 workers) is trained too and reported beside it;
- students: the pair student (raykd.students.pair: the answer read against the reference answers, overlap tokens,
  the MiniLM word pieces and embeddings) distilled from the stack with KD and, as the baseline, without, each
  with `--seeds` seeds, as Ray tasks on one core each.
Validation is carved from the training questions; every response of the held-out questions is test.

Reported per fold and over folds: accuracy with a bootstrap 95% interval, the majority rate of the held-out
responses, and whether the KD student (mean over seeds) is within 0.02 of the teacher and above the majority
rate. Results go to `--workdir/lqo.json` and `lqo.md`. Each fold's results are cached (an interrupted run picks
up where it stopped), and so is each teacher, kept with the config it was trained from.
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

from bench.run_all import teacher_stage
from raykd import tables
from raykd.data import data_dir, read_semeval
from raykd.errors import RaykdError
from raykd.io import write_text_atomic
from raykd.metrics import bootstrap_interval

TASK = "scientsbank_2way"
# The pair student of earlier runs (the best of four student families there): it reads the answer against the
# reference answers, with the overlap tokens, on the MiniLM word pieces and embeddings.
STUDENT = {"arch": "pair", "per_task": True, "overlap": True, "tokenizer": "wordpiece", "init_embeddings": "teacher",
           "vocab_size": 4000, "embed_dim": 32, "hidden": 64}
DISTILL = {"kd_weight": 0.5, "temperature": 2.0, "epochs": 20, "patience": 3}
WITHIN = 0.02  # the KD student's largest gap to the teacher on a fold


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


def data_config(path: Path, labels: list[str]) -> dict[str, Any]:
    columns = {"text": "text", "id": "id", "label": "label", "question": "question", "reference": "reference",
               "split": "split", "task_name": TASK}
    return {"path": str(path), "format": "generic", "options": {"columns": columns, "labels": labels},
            "validation": 0.1, "seed": 0}


def stack_config(path: Path, labels: list[str]) -> dict[str, Any]:
    return {
        "name": f"lqo-stack-{path.stem}",
        "data": data_config(path, labels),
        "model": {"kind": "stack"},
        "stack": {"representations": [{"backbone": "minilm", "max_length": 128},
                                      {"backbone": "mpnet", "max_length": 128}],
                  "groups": ["text", "prompt", "pair", "lexical", "embedding", "neighbours"],
                  "group_folds_by": "question", "folds": 5, "embed_concurrency": 2},
    }


def teacher_config(path: Path, labels: list[str], epochs: int) -> dict[str, Any]:
    return {
        "name": f"lqo-teacher-{path.stem}",
        "data": data_config(path, labels),
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


def teacher_row(name: str, teacher: Any, labels: list[str], y_of: pd.Series) -> tuple[dict[str, Any], np.ndarray]:
    """A teacher's accuracy on the held-out questions, from its soft labels; and the gold labels in its order."""
    from raykd.teacher.export import read_soft_labels

    soft, _ = read_soft_labels(teacher.soft_labels)
    test = soft[soft["split"] == "test"]
    y = np.array([labels.index(v) for v in y_of.loc[test["id"]]])
    return accuracy_row(name, y, test[[f"p_{lab}" for lab in labels]].to_numpy().argmax(1)), test["id"].to_numpy()


def _student(teacher_dir: str, kd_weight: float, seed: int) -> tuple[list[str], np.ndarray]:
    """One pair student distilled from the teacher at `teacher_dir`: the held-out responses' ids and decisions."""
    from raykd.config import from_dict
    from raykd.distill.config import DistillConfig, StudentConfig
    from raykd.distill.handoff import open_student_stage
    from raykd.distill.train import fit_student, heldout_probabilities
    from raykd.heads import decide

    stage = open_student_stage(teacher_dir, None, "bench lqo")
    f = stage.frame[stage.frame["y"].notna() | stage.frame["soft"].notna()]
    dcfg = from_dict(DistillConfig, {**DISTILL, "kd_weight": kd_weight, "seed": seed, "threads": 1})
    fit = fit_student(from_dict(StudentConfig, STUDENT), dcfg, f[f["split"].isin(["train", "unlabelled"])],
                      f[f["split"] == "validation"], stage.layout, str(stage.teacher.model_dir))
    test = f[f["split"] == "test"]
    probs, _, _ = heldout_probabilities(fit, test)
    spec = stage.layout.spec(TASK)
    return test["id"].astype(str).tolist(), decide(np.stack(probs), spec, fit.thresholds.get(TASK))


def students(teacher_dir: Path, seeds: int) -> dict[tuple[str, int], tuple[list[str], np.ndarray]]:
    """The pair student with KD and without, `seeds` seeds each, as Ray tasks of one core."""
    import ray

    remote = ray.remote(_student).options(num_cpus=1)
    jobs = {(variant, seed): remote.remote(str(teacher_dir), DISTILL["kd_weight"] if variant == "KD" else 0.0, seed)
            for seed in range(seeds) for variant in ("KD", "no-KD")}
    return dict(zip(jobs, ray.get(list(jobs.values())), strict=True))


def run_fold(path: Path, labels: list[str], work: Path, tracking: str, seeds: int, pair_epochs: int
             ) -> dict[str, Any]:
    saved = work / "result.json"
    if saved.exists():
        return json.loads(saved.read_text())
    t0 = time.time()
    data = pd.read_parquet(path).set_index("id")
    y_of = data["label"]
    stack = fold_teacher(stack_config(path, labels), work / "stack", tracking)
    first, ids = teacher_row("teacher (stack)", stack, labels, y_of)
    rows = [first]
    if pair_epochs:
        rows.append(teacher_row("teacher (pair head)", fold_teacher(teacher_config(path, labels, pair_epochs),
                                                                    work / "teacher", tracking), labels, y_of)[0])
    y = np.array([labels.index(v) for v in y_of.loc[ids]])
    for (variant, seed), (sid, pred) in sorted(students(work / "stack", seeds).items()):
        order = pd.Series(np.arange(len(sid)), index=sid).loc[[str(i) for i in ids]].to_numpy()
        rows.append({**accuracy_row(f"pair student {variant}", y, pred[order]), "seed": seed})
    result = {"fold": path.stem, "test_responses": len(y), "test_questions": int(data.loc[ids, "question"].nunique()),
              "majority": float(np.bincount(y).max() / len(y)), "rows": rows, "seconds": time.time() - t0,
              "stack": stack.stack.chosen if stack.stack else []}
    write_text_atomic(saved, json.dumps(result, indent=2, default=str))
    return result


def model_means(res: dict[str, Any]) -> dict[str, float]:
    """Per model (students: the mean over seeds), the fold's accuracy."""
    out: dict[str, list[float]] = {}
    for r in res["rows"]:
        out.setdefault(r["model"], []).append(r["accuracy"])
    return {m: float(np.mean(v)) for m, v in out.items()}


def summary(results: list[dict[str, Any]]) -> str:
    models = list(model_means(results[0]))
    header = ["fold", "questions", "responses", "majority", *models, "stack kept"]
    body = []
    for res in results:
        means = model_means(res)
        cells = []
        for m in models:
            runs = [r for r in res["rows"] if r["model"] == m]
            if len(runs) == 1:
                cells.append(f"{runs[0]['accuracy']:.3f} [{runs[0]['low']:.3f}, {runs[0]['high']:.3f}]")
            else:
                each = " / ".join(f"{r['accuracy']:.3f}" for r in runs)
                cells.append(f"{means[m]:.3f} ({each})")
        body.append([res["fold"], res["test_questions"], res["test_responses"], f"{res['majority']:.3f}", *cells,
                     ", ".join(res.get("stack", []))])
    over = {m: float(np.mean([model_means(res)[m] for res in results])) for m in models}
    body.append(["mean", "", "", f"{np.mean([r['majority'] for r in results]):.3f}",
                 *[f"{over[m]:.3f}" for m in models], ""])
    lines = [tables.markdown(header, body), "", "Students: the mean over seeds, each seed's accuracy in parentheses; "
             "teachers: bootstrap 95% intervals.", ""]
    teacher = models[0]
    for m in models[1:]:
        within = all(model_means(res)[m] >= model_means(res)[teacher] - WITHIN for res in results)
        above = all(model_means(res)[m] > res["majority"] for res in results)
        lines.append(f"- {m}: within {WITHIN} of the {teacher} on every fold: {'met' if within else '**MISSED**'}; "
                     f"above the majority rate on every fold: {'met' if above else '**MISSED**'}")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="runs/bench_lqo")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=3, help="student seeds per variant (KD, no-KD)")
    parser.add_argument("--pair-teacher-epochs", type=int, default=0,
                        help="also train the fine-tuned MiniLM pair teacher for this many epochs (0: not)")
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
    from raykd.runtime import ensure_ray

    ensure_ray()
    results = [run_fold(p, labels, work / p.stem, tracking, args.seeds, args.pair_teacher_epochs) for p in run]
    write_text_atomic(work / "lqo.json", json.dumps(results, indent=2))
    text = summary(results)
    if len(run) < len(paths):
        text += f"\nOnly {len(run)} of the {len(paths)} folds were run ({', '.join(p.stem for p in run)}).\n"
    write_text_atomic(work / "lqo.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
