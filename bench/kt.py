"""The learner simulator on two knowledge-tracing settings: is the teacher better than every student it teaches,
and does KD beat no KD?

    .venv/bin/python -m bench.kt --workdir runs/bench_kt [--configs configs/kt_assist2009.yaml configs/kt_piech.yaml]

Each config runs `raykd kt` as a user would (teacher chosen on validation, students on Ray Tune, the simulation),
under `--workdir/<config name>` (a setting whose three results are already there is read, not rerun). The two
default settings are ASSISTments 2009 in the DKVMN split (110 named skills) and the same platform in the original
DKT paper's split (Piech et al. 2015: other learners, other preprocessing, 124 unnamed skills). Reported per
setting: the teacher and every student setting with test AUC and its 95% bootstrap interval over learners, and
the checks: the teacher's test AUC above every student's; every KD setting above the no-KD one on every seed
(its worst seed above no-KD's best); the distill stage's verdict (teacher better than the best no-KD student on
validation). Results go to `--workdir/kt.json` and `kt.md`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from raykd import tables
from raykd.config import load_config
from raykd.io import write_text_atomic
from raykd.kt.config import KTJobConfig
from raykd.kt.job import distill_dir, run_kt, teacher_dir
from raykd.kt.results import KTDistillResult, KTTeacherResult
from raykd.pipeline import load_result

CONFIGS = ("configs/kt_assist2009.yaml", "configs/kt_piech.yaml")


@dataclasses.dataclass
class SettingReport:
    name: str
    data: str
    teacher: str
    teacher_parameters: int
    teacher_val_auc: float
    teacher_test_auc: float
    teacher_test_interval: tuple[float, float]
    champion: str
    champion_test_auc: float
    champion_test_interval: tuple[float, float]
    no_kd_test_auc: float
    no_kd_test_interval: tuple[float, float]
    best_student_test_auc: float
    teacher_beats_every_student: bool
    kd_beats_no_kd_on_every_seed: bool
    kd_pays_on_validation: bool
    rows: list[list[Any]]


def run_setting(config: str, workdir: Path, tracking_uri: str | None) -> KTJobConfig:
    cfg = load_config(config, KTJobConfig)
    cfg = dataclasses.replace(cfg, output_dir=str(workdir / cfg.name))
    done = [Path(teacher_dir(cfg)) / "kt_teacher_result.json", Path(distill_dir(cfg)) / "kt_distill_result.json",
            Path(distill_dir(cfg)) / "kt_simulate_result.json"]
    if not all(p.is_file() for p in done):
        run_kt(cfg, tracking_uri=tracking_uri)
    return cfg


def report(cfg: KTJobConfig) -> SettingReport:
    teacher = load_result(KTTeacherResult, Path(teacher_dir(cfg)) / "kt_teacher_result.json")
    distill = load_result(KTDistillResult, Path(distill_dir(cfg)) / "kt_distill_result.json")
    no_kd = [s for s in distill.settings if s.kd_weight == 0]
    kd = [s for s in distill.settings if s.kd_weight > 0]
    rows = [["teacher: " + teacher.description, teacher.parameters, f"{teacher.val_auc:.4f}",
             f"{teacher.test_auc:.4f}", f"[{teacher.test_auc_interval[0]:.4f}, {teacher.test_auc_interval[1]:.4f}]"]]
    rows += [[f"student: hidden {t.hidden}, lambda {t.kd_weight:g}, T {t.temperature:g}, seed {t.seed}", t.parameters,
              f"{t.val_auc:.4f}", f"{t.test_auc:.4f}", f"[{t.test_auc_interval[0]:.4f}, {t.test_auc_interval[1]:.4f}]"]
             for t in distill.trials]
    c, twin = distill.champion, distill.no_kd_twin
    return SettingReport(
        cfg.name, cfg.data.path, teacher.description, teacher.parameters, teacher.val_auc, teacher.test_auc,
        tuple(teacher.test_auc_interval), f"hidden {c.hidden}, lambda {c.kd_weight:g}, T {c.temperature:g}, seed "
        f"{c.seed}", c.test_auc, tuple(c.test_auc_interval), twin.test_auc, tuple(twin.test_auc_interval),
        max(t.test_auc for t in distill.trials), teacher.test_auc > max(t.test_auc for t in distill.trials),
        bool(kd) and all(s.test_auc_min > max(n.test_auc_max for n in no_kd if n.hidden == s.hidden) for s in kd),
        distill.kd_pays, rows)


def markdown(reports: list[SettingReport]) -> str:
    out = []
    for r in reports:
        out += [f"## {r.name} ({r.data})", "",
                tables.markdown(["model", "parameters", "validation AUC", "test AUC", "95% interval"], r.rows), "",
                f"- teacher above every student on test: **{r.teacher_beats_every_student}** (teacher "
                f"{r.teacher_test_auc:.4f}, best student {r.best_student_test_auc:.4f})",
                f"- every KD setting above no KD on every seed: **{r.kd_beats_no_kd_on_every_seed}** (champion "
                f"{r.champion}: {r.champion_test_auc:.4f}, its no-KD twin {r.no_kd_test_auc:.4f})",
                f"- teacher better than the best no-KD student on validation (KD pays): **{r.kd_pays_on_validation}**",
                ""]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="runs/bench_kt")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS))
    parser.add_argument("--tracking-uri", default=None)
    args = parser.parse_args()
    work = Path(args.workdir)
    reports = [report(run_setting(c, work, args.tracking_uri)) for c in args.configs]
    write_text_atomic(work / "kt.json", json.dumps([dataclasses.asdict(r) for r in reports], indent=2))
    text = markdown(reports)
    write_text_atomic(work / "kt.md", text)
    print(text)
    ok = all(r.teacher_beats_every_student and r.kd_beats_no_kd_on_every_seed for r in reports)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
