"""The distill job: students from a teacher's soft labels, each beside its no-KD baseline.

For every student in the config (per task, or one for all tasks), fit a KD student and (with `baseline`)
the same student with kd_weight = 0; evaluate both on validation and test; save each as a self-describing
artifact; measure parameters, bytes on disk and CPU throughput next to the teacher in the same process;
log everything to MLflow under the teacher's run, and print the comparison table.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raykd.config import DistillJobConfig, StudentConfig
from raykd.data.prepare import prepare_dataset
from raykd.distill.softlabels import attach_soft_labels
from raykd.distill.train import FitResult, evaluate_frame, fit_student, save_fit
from raykd.errors import ConfigError
from raykd.io import write_text_atomic
from raykd.tasks import TaskLayout, evaluate, primary


def dir_bytes(path: str | Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def throughput(scorer: Any, texts: list[str], tasks: list[str], batch_size: int, repeats: int = 1) -> float:
    """Responses per second of `scorer.predict_proba` at `batch_size` (after one warm-up batch)."""
    scorer.predict_proba(texts[:batch_size], tasks[:batch_size], batch_size=batch_size)
    t0 = time.perf_counter()
    for _ in range(repeats):
        scorer.predict_proba(texts, tasks, batch_size=batch_size)
    return repeats * len(texts) / (time.perf_counter() - t0)


def teacher_metrics(frame: pd.DataFrame, layout: TaskLayout, thresholds: dict[str, list[float]],
                    split: str) -> dict[str, dict[str, float]]:
    """The teacher's metrics per task on `split`, from its exported probabilities."""
    out = {}
    rows = frame[(frame["split"] == split) & frame["y"].notna() & frame["soft"].notna()]
    for task in layout.names:
        part = rows[rows["task"] == task]
        if len(part):
            spec = layout.spec(task)
            out[task] = evaluate(np.stack(part["soft"].tolist()), np.asarray(part["y"].tolist()), spec,
                                 thresholds.get(task))
    return out


def student_groups(name: str, scfg: StudentConfig, tasks: list[str]) -> list[tuple[str, list[str]]]:
    return [(f"{name}-{t}", [t]) for t in tasks] if scfg.per_task else [(name, list(tasks))]


def run_distill(cfg: DistillJobConfig, tracking_uri: str | None = None) -> dict[str, Any]:
    import mlflow

    from raykd.scoring import load_scorer
    from raykd.tracking import default_tracking_uri, flatten, git_commit, log_dataset_input, setup_experiment

    out = Path(cfg.output_dir).expanduser().resolve()
    teacher_dir = Path(cfg.teacher).expanduser().resolve()
    soft_path = teacher_dir / "soft_labels.parquet"
    if not soft_path.is_file() or not (teacher_dir / "model").is_dir():
        raise ConfigError("teacher", f"{teacher_dir} is not a teacher job's output (soft_labels.parquet, model/)")
    teacher_info = json.loads((teacher_dir / "teacher_result.json").read_text())
    ds = prepare_dataset(cfg.data)
    frame = attach_soft_labels(ds, soft_path, require_all=False)
    layout = TaskLayout.of(ds.tasks)
    teacher = load_scorer(str(teacher_dir / "model"))
    teacher_test = teacher_metrics(frame, layout, teacher.thresholds, "test")

    bench = frame[frame["split"].isin(["test", "validation"])]  # responses to time scorers on
    sample = bench.sample(n=min(cfg.throughput_responses, len(bench)), random_state=0)
    bench_texts, bench_tasks = sample["text"].tolist(), sample["task"].tolist()
    teacher_rps = throughput(teacher, bench_texts, bench_tasks, cfg.throughput_batch)
    teacher_params = teacher.num_parameters
    print(f"[distill] teacher: {teacher_params:,} parameters, {teacher_rps:.1f} responses/s "
          f"(CPU, batch {cfg.throughput_batch}, {len(bench_texts)} responses)", flush=True)

    tracking_uri = tracking_uri or cfg.tracking.tracking_uri or teacher_info.get("tracking_uri") \
        or default_tracking_uri()
    experiment_id = setup_experiment(tracking_uri, cfg.tracking.experiment)
    lineage = {"raykd.teacher_run_id": teacher_info.get("run_id") or "",
               "raykd.soft_labels_digest": teacher_info.get("soft_labels_digest", ""),
               "raykd.data_digest": ds.digest(), "raykd.git_commit": git_commit()}
    rows: list[dict[str, Any]] = []
    students: list[dict[str, Any]] = []
    run_name = cfg.tracking.run_name or f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name,
                          tags={**lineage, "raykd.stage": "distill",
                                **({"mlflow.parentRunId": teacher_info["run_id"]} if teacher_info.get("run_id")
                                   else {})}) as parent:
        mlflow.log_params(flatten({"distill": dataclasses.asdict(cfg.distill),
                                   "students": {k: dataclasses.asdict(v) for k, v in cfg.students.items()},
                                   "teacher": str(teacher_dir)}))
        log_dataset_input(ds.frame, name=Path(cfg.data.path).name, digest=ds.digest(), source=str(cfg.data.path))
        for name, scfg in cfg.students.items():
            for group, tasks in student_groups(name, scfg, layout.names):
                glayout = TaskLayout.of({t: ds.tasks[t] for t in tasks})
                part = frame[frame["task"].isin(tasks)]
                variants = [("kd", cfg.distill)]
                if cfg.baseline:
                    variants.append(("nokd", dataclasses.replace(cfg.distill, kd_weight=0.0)))
                for variant, dcfg in variants:
                    info = _fit_one(cfg, out, group, variant, scfg, dcfg, part, glayout, teacher_dir, bench,
                                    teacher_rps, teacher_params, lineage, experiment_id, parent.info.run_id)
                    students.append(info)
                    print(f"[distill] {group:14s} {variant:4s} params {info['parameters']:>8,} "
                          f"val {info['val_score']:.4f} test {info['test_score']:.4f} "
                          f"{info['responses_per_s']:.0f} resp/s ({info['speedup']:.1f}x teacher)", flush=True)
        rows = comparison_rows(students, teacher_test, layout, teacher_params)
        report = {"teacher": {"parameters": teacher_params, "responses_per_s": teacher_rps,
                              "test": teacher_test, "run_id": teacher_info.get("run_id")},
                  "students": students, "table": rows, "targets": targets(rows, students, teacher_test, layout)}
        table = format_table(rows)
        write_text_atomic(out / "distill_report.json", json.dumps(report, indent=2, default=float))
        write_text_atomic(out / "distill_report.md", table + "\n\n" + format_targets(report["targets"]) + "\n")
        mlflow.log_artifact(str(out / "distill_report.json"))
        mlflow.log_artifact(str(out / "distill_report.md"))
        mlflow.log_table(pd.DataFrame(rows), artifact_file="comparison.json")
        mlflow.log_metrics({k: v for k, v in report["targets"].items() if isinstance(v, int | float)})
        report["run_id"] = parent.info.run_id
    print(table)
    print(format_targets(report["targets"]), flush=True)
    return report


def _fit_one(cfg: DistillJobConfig, out: Path, group: str, variant: str, scfg: StudentConfig, dcfg: Any,
             part: pd.DataFrame, layout: TaskLayout, teacher_dir: Path, bench: pd.DataFrame, teacher_rps: float,
             teacher_params: int, lineage: dict[str, str], experiment_id: str, parent_id: str) -> dict[str, Any]:
    import mlflow

    from raykd.students.artifact import StudentScorer

    train = part[part["split"].isin(["train", "unlabelled"])]
    val, test = part[part["split"] == "validation"], part[part["split"] == "test"]
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{group}-{variant}", nested=True,
                          tags={**lineage, "raykd.stage": "student", "mlflow.parentRunId": parent_id}) as run:
        mlflow.log_params({**{f"student.{k}": v for k, v in dataclasses.asdict(scfg).items()},
                           **{f"distill.{k}": v for k, v in dataclasses.asdict(dcfg).items()},
                           "tasks": ",".join(layout.names)})

        def log_epoch(epoch: int, metrics: dict[str, float]) -> None:
            mlflow.log_metrics({k.replace("/", "."): v for k, v in metrics.items() if np.isfinite(v)}, step=epoch)

        fit: FitResult = fit_student(scfg, dcfg, train, val, layout, str(teacher_dir / "model" / "tokenizer"),
                                     on_epoch=log_epoch)
        test_metrics, test_score = evaluate_frame(fit, test)
        model_dir = save_fit(fit, out / "students" / group / variant,
                             extra={"kd_weight": dcfg.kd_weight, "teacher_run_id": lineage["raykd.teacher_run_id"]})
        b = bench[bench["task"].isin(layout.names)].head(cfg.throughput_responses)
        rps = throughput(StudentScorer(model_dir), b["text"].tolist(), b["task"].tolist(), cfg.throughput_batch,
                         repeats=3)
        info = {"group": group, "variant": variant, "arch": scfg.arch, "tasks": layout.names,
                "kd_weight": dcfg.kd_weight, "parameters": fit.parameters, "bytes": dir_bytes(model_dir),
                "val_score": fit.val_score, "test_score": test_score, "test": test_metrics,
                "best_epoch": fit.best_epoch, "epochs_run": fit.epochs_run, "fit_seconds": fit.seconds,
                "responses_per_s": rps, "speedup": rps / teacher_rps,
                "param_ratio": fit.parameters / teacher_params, "model_dir": str(model_dir),
                "run_id": run.info.run_id}
        mlflow.log_metrics({"test.score": test_score, "val.score": fit.val_score, "parameters": fit.parameters,
                            "bytes_on_disk": info["bytes"], "responses_per_s": rps,
                            "speedup_vs_teacher": rps / teacher_rps,
                            **{f"test.{k.replace('/', '.')}": v for k, v in test_metrics.items()}})
        mlflow.log_artifacts(str(model_dir), artifact_path="model")
    return info


def comparison_rows(students: list[dict[str, Any]], teacher_test: dict[str, dict[str, float]],
                    layout: TaskLayout, teacher_params: int) -> list[dict[str, Any]]:
    """One row per task: teacher vs KD vs no-KD test metric for each student family."""
    rows = []
    for task in layout.names:
        metric = primary(layout.spec(task))
        row: dict[str, Any] = {"task": task, "metric": metric, "teacher": teacher_test.get(task, {}).get(metric),
                               "teacher_params": teacher_params}
        for s in students:
            if task not in s["tasks"]:
                continue
            family = s["group"].removesuffix(f"-{task}") if len(s["tasks"]) == 1 else s["group"]
            key = f"{family}_{s['variant']}"
            row[key] = s["test"].get(f"{task}/{metric}")
            if s["variant"] == "kd":  # the baseline's vocabulary lacks the unscored texts, so it is a bit smaller
                row[f"{family}_params"] = s["parameters"]
                row[f"{family}_speedup"] = s["speedup"]
        rows.append(row)
    return rows


def targets(rows: list[dict[str, Any]], students: list[dict[str, Any]], teacher_test: dict[str, dict[str, float]],
            layout: TaskLayout) -> dict[str, Any]:
    """The issue's targets, measured: size <= 1% of the teacher, within 0.03 of its mean, KD beats no-KD."""
    out: dict[str, Any] = {}
    teacher_mean = float(np.mean([r["teacher"] for r in rows if r["teacher"] is not None]))
    out["teacher_mean"] = teacher_mean
    families = sorted({k.removesuffix("_kd") for r in rows for k in r if k.endswith("_kd")})
    for fam in families:
        kd = [r[f"{fam}_kd"] for r in rows if r.get(f"{fam}_kd") is not None]
        nokd = [r[f"{fam}_nokd"] for r in rows if r.get(f"{fam}_nokd") is not None]
        params = max(r[f"{fam}_params"] for r in rows if f"{fam}_params" in r)
        speed = [r[f"{fam}_speedup"] for r in rows if r.get(f"{fam}_speedup") is not None]
        out[f"{fam}_kd_mean"] = float(np.mean(kd))
        if nokd:
            out[f"{fam}_nokd_mean"] = float(np.mean(nokd))
            out[f"{fam}_kd_gain"] = out[f"{fam}_kd_mean"] - out[f"{fam}_nokd_mean"]
        out[f"{fam}_gap_to_teacher"] = teacher_mean - out[f"{fam}_kd_mean"]
        out[f"{fam}_param_ratio"] = params / rows[0]["teacher_params"]
        out[f"{fam}_min_speedup"] = float(min(speed)) if speed else float("nan")
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def format_table(rows: list[dict[str, Any]]) -> str:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")
    return "\n".join(lines)


def format_targets(t: dict[str, Any]) -> str:
    lines = [f"teacher mean test metric: {t['teacher_mean']:.3f}"]
    fams = sorted({k.removesuffix("_kd_mean") for k in t if k.endswith("_kd_mean")})
    for f in fams:
        gap, ratio = t[f"{f}_gap_to_teacher"], t[f"{f}_param_ratio"]
        parts = [f"{f}: KD mean {t[f'{f}_kd_mean']:.3f}"]
        if f"{f}_nokd_mean" in t:
            gain = t[f"{f}_kd_gain"]
            parts.append(f"no-KD mean {t[f'{f}_nokd_mean']:.3f} (KD gain {gain:+.3f}: "
                         f"{'met' if gain > 0 else 'MISSED'})")
        parts.append(f"gap to teacher {gap:+.3f} ({'met' if gap <= 0.03 else 'MISSED'} <= 0.03)")
        parts.append(f"params {ratio:.2%} of teacher ({'met' if ratio <= 0.01 else 'MISSED'} <= 1%)")
        parts.append(f"min speed-up {t[f'{f}_min_speedup']:.1f}x ({'met' if t[f'{f}_min_speedup'] >= 10 else 'MISSED'}"
                     " >= 10x)")
        lines.append("; ".join(parts))
    return "\n".join(lines)
