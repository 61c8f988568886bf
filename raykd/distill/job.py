"""The distill stage: students from a teacher's soft labels, each beside its no-KD baseline.

    open       the teacher's prepared data with its soft labels joined on, and its reference figures
               (raykd.distill.handoff: size, test scores, CPU throughput measured once per teacher)
    fit        per student (one per task, or one for all tasks) and variant (kd; nokd = kd_weight 0): fit ->
               test -> save the artifact -> time it, each in a child MLflow run
    compare    per task, the teacher against each family's KD and no-KD students; the goals (raykd.goals)
The result is a `DistillResult` (distill_result.json) and a Markdown table (distill_report.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from raykd import goals, tables
from raykd.data.preparation import write_model_data
from raykd.distill.config import DistillConfig, DistillJobConfig, StudentConfig
from raykd.distill.handoff import TeacherReference, open_student_stage
from raykd.distill.train import calibrate, evaluate_fit, fit_student, heldout_probabilities, save_fit
from raykd.evaluation import TaskScores, primary
from raykd.footprint import dir_bytes, throughput
from raykd.heads import TaskLayout
from raykd.pipeline import Lineage, StageRun, resolve_tracking_uri, say
from raykd.teacher.job import TeacherOutput

RESULT = "distill_result.json"
VARIANTS = ("kd", "nokd")


@dataclass
class StudentResult:
    family: str  # the student's name in the config (e.g. lstm, moe)
    group: str  # the family, or family-task for one student per task
    variant: str  # kd, or nokd (the same student with kd_weight 0)
    arch: str
    tasks: list[str]
    kd_weight: float
    parameters: int
    bytes: int
    validation: TaskScores
    test: TaskScores
    best_epoch: int
    epochs_run: int
    fit_seconds: float
    responses_per_s: float
    speedup: float  # against the teacher, same process, same responses
    param_ratio: float  # of the teacher's parameters
    model_dir: str
    run_id: str


@dataclass
class FamilyTargets:
    """One student family against the teacher and the targets, over the tasks the family's students serve."""

    family: str
    teacher_mean: float
    kd_mean: float
    nokd_mean: float | None
    param_ratio: float  # the largest KD student's share of the teacher's parameters
    min_speedup: float

    @property
    def gap(self) -> float:
        return self.teacher_mean - self.kd_mean

    def line(self) -> str:
        t, verdict = goals, goals.verdict
        parts = [f"{self.family}: KD mean {self.kd_mean:.3f}"]
        if self.nokd_mean is not None:
            gain = self.kd_mean - self.nokd_mean
            parts.append(f"no-KD mean {self.nokd_mean:.3f} (KD gain {gain:+.3f}: {verdict(gain > 0)})")
        parts.append(f"gap to teacher {self.gap:+.3f} ({verdict(self.gap <= t.GAP)} <= {t.GAP})")
        parts.append(f"params {self.param_ratio:.2%} of teacher ({verdict(self.param_ratio <= t.MAX_PARAM_SHARE)} <= "
                     f"{t.MAX_PARAM_SHARE:.0%})")
        parts.append(f"min speed-up {self.min_speedup:.1f}x ({verdict(self.min_speedup >= t.SPEEDUP)} >= "
                     f"{t.SPEEDUP:g}x)")
        return "; ".join(parts)


@dataclass
class DistillResult:
    output_dir: str
    run_id: str
    teacher: TeacherReference
    students: list[StudentResult]
    targets: list[FamilyTargets]

    @property
    def families(self) -> list[str]:
        return list(dict.fromkeys(s.family for s in self.students))

    def student(self, family: str, variant: str, task: str) -> StudentResult | None:
        return next((s for s in self.students if (s.family, s.variant) == (family, variant) and task in s.tasks),
                    None)

    def metric(self, family: str, variant: str, task: str, metric: str) -> float | None:
        s = self.student(family, variant, task)
        return None if s is None else s.test.tasks.get(task, {}).get(metric)

    def table(self, layout: TaskLayout) -> str:
        """Per task: the teacher's test metric beside each family's KD and no-KD students'."""
        header = ["task", "metric", "teacher"] + [f"{f} {v}" for f in self.families for v in VARIANTS]
        rows = []
        for task in layout.names:
            metric = primary(layout.spec(task))
            rows.append([task, metric, self.teacher.test.tasks.get(task, {}).get(metric)]
                        + [self.metric(f, v, task, metric) for f in self.families for v in VARIANTS])
        return tables.markdown(header, rows)


def mean_metric(result: DistillResult, layout: TaskLayout, family: str, variant: str) -> float | None:
    """A family's mean test primary metric over the tasks its students serve (None: no such students)."""
    values = [result.metric(family, variant, t, primary(layout.spec(t))) for t in layout.names]
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def family_targets(result: DistillResult, layout: TaskLayout) -> list[FamilyTargets]:
    out = []
    for family in result.families:
        served = [t for t in layout.names if result.student(family, "kd", t) is not None]
        teacher = [result.teacher.test.tasks[t][primary(layout.spec(t))] for t in served
                   if t in result.teacher.test.tasks]
        kd = [s for s in result.students if s.family == family and s.variant == "kd"]
        out.append(FamilyTargets(family, float(np.mean(teacher)) if teacher else float("nan"),
                                 mean_metric(result, layout, family, "kd") or 0.0,
                                 mean_metric(result, layout, family, "nokd"), max(s.param_ratio for s in kd),
                                 min(s.speedup for s in kd)))
    return out


def student_groups(name: str, scfg: StudentConfig, tasks: list[str]) -> list[tuple[str, list[str]]]:
    return [(f"{name}-{t}", [t]) for t in tasks] if scfg.per_task else [(name, list(tasks))]


def fit_one(cfg: DistillJobConfig, run: StageRun, lineage: Lineage, family: str, group: str, variant: str,
            scfg: StudentConfig, dcfg: DistillConfig, part: pd.DataFrame, layout: TaskLayout, teacher: TeacherOutput,
            reference: TeacherReference, bench: pd.DataFrame) -> StudentResult:
    """One student in its own child run: fit on train (+ teacher-scored unlabelled), test, save, time."""
    import mlflow

    from raykd.students.artifact import StudentScorer

    train = part[part["split"].isin(["train", "unlabelled"])]
    with run.child(f"{group}-{variant}", lineage, {"student": dataclasses.asdict(scfg),
                                                   "distill": dataclasses.asdict(dcfg),
                                                   "tasks": ",".join(layout.names)}) as child:

        def log_epoch(epoch: int, metrics: dict[str, float]) -> None:
            mlflow.log_metrics({k.replace("/", "."): v for k, v in metrics.items() if np.isfinite(v)}, step=epoch)

        validation = part[part["split"] == "validation"]
        fit = fit_student(scfg, dcfg, train, validation, layout, str(teacher.model_dir), on_epoch=log_epoch)
        fit = calibrate(fit, heldout_probabilities(fit, validation), dcfg.review, "validation")
        test = evaluate_fit(fit, part[part["split"] == "test"], intervals=True)
        model_dir = save_fit(fit, run.out / "students" / group / variant,
                             extra={"kd_weight": dcfg.kd_weight, "teacher_run_id": reference.run_id})
        write_model_data(model_dir, teacher.prepared)
        mine = bench[bench["task"].isin(layout.names)]
        rps = throughput(StudentScorer(model_dir), mine["text"].tolist(), mine["task"].tolist(),
                         reference.benchmark.batch, repeats=3)
        result = StudentResult(family=family, group=group, variant=variant, arch=scfg.arch, tasks=layout.names,
                               kd_weight=dcfg.kd_weight, parameters=fit.parameters, bytes=dir_bytes(model_dir),
                               validation=fit.validation, test=test, best_epoch=fit.best_epoch,
                               epochs_run=fit.epochs_run, fit_seconds=fit.seconds, responses_per_s=rps,
                               speedup=rps / reference.responses_per_s,
                               param_ratio=fit.parameters / reference.parameters, model_dir=run.locate(model_dir),
                               run_id=child.info.run_id)
        mlflow.log_metrics({"test.score": test.score, "val.score": fit.val_score, "parameters": fit.parameters,
                            "bytes_on_disk": result.bytes, "responses_per_s": rps, "speedup_vs_teacher": result.speedup,
                            **{k.replace("/", "."): v for k, v in test.flat("test.").items() if np.isfinite(v)}})
        mlflow.log_artifacts(str(model_dir), artifact_path="model")
    say("distill", f"{group:14s} {variant:4s} params {result.parameters:>8,} val {fit.val_score:.4f} test "
                   f"{test.score:.4f} {rps:.0f} resp/s ({result.speedup:.1f}x teacher)")
    return result


def run_distill(cfg: DistillJobConfig, tracking_uri: str | None = None) -> DistillResult:
    from raykd.io import write_text_atomic

    stage = open_student_stage(cfg.teacher, cfg.data, "distill")
    teacher, ds, frame, layout, lineage = stage.teacher, stage.ds, stage.frame, stage.layout, stage.lineage
    reference, bench = stage.reference(), stage.bench
    params = {"distill": dataclasses.asdict(cfg.distill), "teacher": teacher.location,
              "students": {k: dataclasses.asdict(v) for k, v in cfg.students.items()}}
    with StageRun.open("distill", cfg.name, cfg.output_dir, cfg.tracking,
                       resolve_tracking_uri(tracking_uri, cfg.tracking, teacher.result.tracking_uri), lineage, params,
                       dataset=ds, data_source=(cfg.data or teacher.prepared.data).path,
                       parent_run_id=teacher.result.run_id) as run:
        students = []
        for family, scfg in cfg.students.items():
            for group, tasks in student_groups(family, scfg, layout.names):
                glayout = TaskLayout.of({t: ds.tasks[t] for t in tasks})
                part = frame[frame["task"].isin(tasks)]
                variants = [("kd", cfg.distill)] + ([("nokd", dataclasses.replace(cfg.distill, kd_weight=0.0))]
                                                    if cfg.baseline else [])
                for variant, dcfg in variants:
                    students.append(fit_one(cfg, run, lineage, family, group, variant, scfg, dcfg, part, glayout,
                                            teacher, reference, bench))
        result = DistillResult(run.location, run.run_id, reference, students, [])
        result.targets = family_targets(result, layout)
        table = result.table(layout)
        summary = "\n".join(t.line() for t in result.targets)
        write_text_atomic(run.out / "distill_report.md", f"{table}\n\nteacher mean test metric: "
                                                         f"{np.mean([t.teacher_mean for t in result.targets]):.3f}\n"
                                                         f"{summary}\n")
        run.log_artifact(run.out / "distill_report.md")
        run.log_metrics({f"{t.family}.{k}": v for t in result.targets
                         for k, v in (("kd_mean", t.kd_mean), ("gap_to_teacher", t.gap),
                                      ("param_ratio", t.param_ratio), ("min_speedup", t.min_speedup))})
        run.save(result, RESULT)
    print(table)
    print(summary, flush=True)
    return result

