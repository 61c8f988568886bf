"""Quality on all 10 ASAP-SAS sets, one command: teachers -> multi-teacher soft labels -> a cross-validated Ray Tune
search over student families (with and without KD) -> the champion against the teachers and TF-IDF, per set.

    .venv/bin/python -m bench.quality --config bench/quality.cpu.yaml --workdir runs/quality

Stages (each cached in --workdir, so an interrupted run picks up where it stopped):
  1. one teacher per entry of `teachers` (Ray Train + DeepSpeed ZeRO); entries with `gpu: true` run only where a
     GPU is visible, and the report names those that did not run
  2. `raykd ensemble` of the trained teachers (`ensemble.weights`: mean, or per-task weights fit on validation)
  3. TF-IDF + logistic regression per set, on the same splits
  4. Ray Tune over the students (`tune`: a TuneJobConfig without teacher/output_dir), scored by k-fold CV; the
     champion and the best no-KD trial of its family are scored on test with bootstrap 95% intervals
  5. report.md: per-set test QWK with intervals, every target of the quality issue met or missed
`--only stage,...` runs some stages now; `--set key=value` overrides the config. A cached stage is reused only while
the part of the config it reads is unchanged (edit `tune` and delete tune.json + tune/ to rerun just the search).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bench.crossfit import crossfit_section, crossfit_stage, predict_stage
from bench.run_all import (
    bench_parser,
    machine,
    open_workdir,
    run_stages,
    teacher_job_config,
    teacher_stage,
    tfidf_stage,
    typed,
)
from bench.targets import (
    AUTO_QWK,
    CHAMPION_GAP,
    COVERAGE,
    CPU_MINUTES,
    KD_GAIN,
    MAX_ECE,
    PARAM_RATIO,
    SPEEDUP,
    STUDENT_QWK,
)
from bench.targets import TEACHER_QWK as TEACHER_TARGET
from raykd.confidence import DEFAULT_LEVEL as LEVEL
from raykd.confidence import TOP_SHARE, confidence_table
from raykd.config import from_dict
from raykd.errors import ConfigError
from raykd.io import write_text_atomic
from raykd.tables import markdown
from raykd.teacher.config import EnsembleJobConfig
from raykd.tune.config import TuneJobConfig


def merged(base: dict, over: dict) -> dict:
    """`over` on top of `base`, section by section (one level of nesting, as in a teacher config)."""
    out = dict(base)
    for k, v in over.items():
        out[k] = {**out[k], **v} if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def teacher_config(cfg: dict, name: str) -> dict:
    """A teacher entry on top of `teacher_defaults` and `data`, or on top of the teacher config file it names
    (`config: path`)."""
    entry = {k: v for k, v in cfg["teachers"][name].items() if k not in ("gpu", "config")}
    if "config" in cfg["teachers"][name]:
        path = Path(cfg["teachers"][name]["config"])
        if not path.is_file():
            raise ConfigError(f"teachers.{name}.config", f"{path}: no such file")
        base = yaml.safe_load(path.read_text())
    else:
        base = {**cfg.get("teacher_defaults", {}), "data": cfg["data"]}
    return merged({**base, "name": f"quality-teacher-{name}"}, entry)


def ensemble_stage(dirs: list[Path], weights: str, out: Path, tracking: str) -> Any:
    from raykd.teacher.ensemble import run_ensemble

    ecfg = EnsembleJobConfig(name="quality-ensemble", output_dir=str(out), teachers=[str(d) for d in dirs],
                             weights=weights)
    return run_ensemble(ecfg, tracking_uri=tracking)


def tune_config(cfg: dict, teacher_dir: Path, out: Path) -> TuneJobConfig:
    tcfg = from_dict(TuneJobConfig, {**cfg, "name": "quality-tune", "output_dir": str(out),
                                     "teacher": str(teacher_dir)}, "tune")
    return tcfg


def tune_stage(cfg: dict, teacher_dir: Path, out: Path, tracking: str) -> Any:
    from raykd.tune.job import run_tune

    return run_tune(tune_config(cfg, teacher_dir, out), tracking_uri=tracking)


def check_configs(cfg: dict, work: Path, teacher_dir: Path) -> None:
    """Every stage's config, GPU teachers included, typed and validated before the first stage runs: a typo in
    `tune` fails at once, not after an hour of teachers."""
    for name in cfg["teachers"]:
        teacher_job_config(teacher_config(cfg, name), work / f"teacher_{name}", f"teachers.{name}")
    tune_config(cfg["tune"], teacher_dir, work / "tune")


# ------------------------------------------------------------------------------------------ report
def _cell(scores: Any, task: str | None = None) -> str:
    """`0.812 [0.790, 0.833]` from a TaskScores: one task's QWK, or the mean over tasks."""
    if scores is None:
        return "-"
    value = scores.score if task is None else scores.tasks[task]["qwk"]
    ci = scores.score_interval if task is None else scores.intervals.get(task)
    return f"{value:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _met(ok: bool) -> str:
    return "met" if ok else "**MISSED**"


def stack_section(name: str, summary: Any, tasks: list[str]) -> list[str]:
    """The stacked teacher: its representations, each learner's cross-validated score alone, what forward
    selection kept, and each set's decoding."""
    reps = markdown(["representation", "backbone", "layer", "from the cache", "encoded", "seconds"],
                    [[r.key, r.backbone, "last" if r.layer is None else r.layer, r.cached, r.computed,
                      f"{r.seconds:.0f}"] for r in summary.representations])
    kept = {n: s for n, s in summary.steps}
    learners = markdown(["learner", "CV QWK alone", "kept: CV QWK once added"],
                        [[n, f"{s:.4f}", f"{kept[n]:.4f}" if n in kept else "-"]
                         for n, s in sorted(summary.alone.items(), key=lambda kv: -kv[1])])
    decoding = ", ".join(f"{t} {summary.decoding.get(t, '-')}" for t in tasks)
    return ["", f"Stacked teacher `{name}` ({summary.folds}-fold cross-fitting, mean CV QWK {summary.cv_score:.3f}; "
                f"stage times {', '.join(f'{k} {v / 60:.1f}' for k, v in summary.seconds.items())} minutes):", "",
            reps, "", learners, "", f"Decoding chosen by cross-validation: {decoding}."]


def report(results: dict, gpu_skipped: list[str]) -> str:
    from raykd.teacher.job import TeacherResult
    from raykd.tune.job import TuneResult

    teachers = {n: typed(TeacherResult, v) for n, v in results["teachers"].items()}
    ens = typed(TeacherResult, results["ensemble"]) if results.get("ensemble") else None
    tuned = typed(TuneResult, results["tune"])
    tfidf: dict[str, dict[str, float]] = results["tfidf"]
    reference = ens or next(iter(teachers.values()))
    ref_test = reference.splits["test"]
    test, no_kd = tuned.test, tuned.no_kd_test
    tasks = sorted(test.tasks, key=lambda t: int(t.split("_")[-1]) if t.split("_")[-1].isdigit() else t)
    cols = [*teachers, *(["ensemble"] if ens else [])]
    lines = [f"# Quality on all 10 ASAP-SAS sets ({results['machine']['gpu'] or 'CPU only'})", "",
             f"`{results['command']}`: {results['total_seconds'] / 60:.1f} minutes end to end "
             f"({', '.join(f'{k} {v / 60:.1f}' for k, v in results['stage_seconds'].items() if v)} minutes).", ""]
    if gpu_skipped:
        lines += [f"GPU stages that did not run (no GPU visible): {', '.join(gpu_skipped)}.", ""]
    w = tuned.winner
    lines += [f"Champion: trial {w.trial_id} ({', '.join(f'{k}={v}' for k, v in w.params.items())}), "
              f"{w.parameters:,} parameters, cross-validated QWK {w.val_score:.3f}.", ""]
    test_scores = [*[teachers[c].splits["test"] for c in teachers], *([ens.splits["test"]] if ens else []), test, no_kd]
    head = ["set", *[f"teacher {c}" for c in cols], "champion", "its family, no KD", "TF-IDF+LR"]
    rows = [[t, *[_cell(x, t) for x in test_scores], tfidf[t]["qwk"]] for t in tasks]
    rows.append(["**mean**", *[_cell(x) for x in test_scores], sum(tfidf[t]["qwk"] for t in tasks) / len(tasks)])
    lines += ["Test QWK per set, bootstrap 95% intervals:", "", markdown(head, rows)]
    if ens and ens.weights:
        lines += ["", "Ensemble weights per set (fit on validation log-loss, members in order "
                      f"{', '.join(teachers)}): " + "; ".join(f"{t} {[round(x, 2) for x in ens.weights[t]]}"
                                                              for t in tasks if t in ens.weights)]
    for name, t in teachers.items():
        if t.stack is not None:
            lines += stack_section(name, t.stack, tasks)
    if results.get("crossfit"):
        lines += crossfit_section(results["crossfit"], tasks)
    trials = sorted(tuned.trials, key=lambda t: -t.val_score)
    # Without ASHA only the search's time budget stops a trial before its last fold and refit.
    asha = results["config"]["tune"].get("asha", {}).get("enabled", True)
    stopped = "no: stopped by ASHA or the time budget" if asha else "no: stopped by the time budget"
    lines += ["", "Search (CV mean QWK over the labelled train + validation responses):", "",
              markdown(["trial", "params", "CV QWK", "parameters", "finished"],
                       [[t.trial_id, ", ".join(f"{k}={v}" for k, v in t.params.items()), t.val_score, t.parameters,
                         "yes" if t.complete else stopped] for t in trials])]
    if tuned.confidence:
        conf = {t: tuned.confidence[t] for t in tasks if t in tuned.confidence}
        lines += ["", "Scores a school can act on: the champion's calibrated confidence on test (calibrated on "
                      "out-of-fold predictions; `coverage.png` plots agreement against the share auto-scored):", "",
                  confidence_table(conf)]
    below = [t for t in tasks if test.tasks[t]["qwk"] < tfidf[t]["qwk"]]
    gap = ref_test.score - test.score
    ratio = tuned.teacher_parameters / max(1, w.parameters)
    lines += ["", "Targets (the project's test split):", ""]
    if gpu_skipped:
        lines.append(f"- LLM teacher (gemma-3-270m LoRA) and GPU MPNet teacher: **not run** (no GPU); the teacher "
                     f"here is the CPU {'ensemble' if ens else 'teacher'}.")
    best = max([ref_test.score, *[x.splits["test"].score for x in teachers.values()]])
    lines.append(f"- Best teacher or multi-teacher mean QWK >= {TEACHER_TARGET}: {best:.3f} "
                 f"({_met(best >= TEACHER_TARGET)}).")
    if results.get("predict"):
        shown = results["predict"]
        which = next((n for n, x in [*teachers.items(), ("ensemble", ens)] if x is not None
                      and str(Path(x.model_dir)) == shown["model"]), shown["model"])
        figures = typed(TeacherResult, results["teachers"][which] if which in teachers else results["ensemble"])
        diff = max(abs(shown["qwk"][t] - figures.splits["test"].tasks[t]["qwk"]) for t in tasks)
        lines.append(f"- `raykd predict` on the {which} teacher's folder reproduces its test figures: mean QWK "
                     f"{np.mean(list(shown['qwk'].values())):.3f} against {figures.splits['test'].score:.3f}, largest "
                     f"difference on a set {diff:.4f} ({_met(diff <= 0.005)}, within 0.005).")
    lines.append(f"- Champion mean QWK >= {STUDENT_QWK}: {test.score:.3f} ({_met(test.score >= STUDENT_QWK)}).")
    lines.append(f"- Champion within {CHAMPION_GAP} of its teacher: {test.score:.3f} vs {ref_test.score:.3f} "
                 f"(gap {gap:+.3f}: {_met(gap <= CHAMPION_GAP)}).")
    if no_kd is not None:
        lines.append(f"- Champion at least {KD_GAIN} above its no-KD twin: {test.score:.3f} vs {no_kd.score:.3f} "
                     f"({test.score - no_kd.score:+.3f}: {_met(test.score - no_kd.score >= KD_GAIN)}).")
    elif w.params.get("distill.kd_weight", 1.0) == 0:
        lines.append(f"- Champion at least {KD_GAIN} above its no-KD twin: **MISSED**, the search chose a student "
                     "without KD (no KD student beat it in cross-validation).")
    else:
        lines.append("- Champion vs its no-KD twin: no no-KD trial of its family finished, **not measured**.")
    lines.append(f"- Parameters: {ratio:,.0f}x fewer than the teacher model it is measured against "
                 f"({tuned.teacher_parameters:,}; {_met(ratio >= PARAM_RATIO)} >= {PARAM_RATIO:g}x).")
    lines.append(f"- CPU throughput: {tuned.speedup:.1f}x the teacher's, batches of 64, same process "
                 f"({_met(tuned.speedup >= SPEEDUP)} >= {SPEEDUP:g}x).")
    misses = ", ".join(f"{t} ({test.tasks[t]['qwk']:.3f} < {tfidf[t]['qwk']:.3f})" for t in below)
    lines.append("- Champion >= TF-IDF + LR on every set: "
                 + (f"met ({len(tasks)} of {len(tasks)})." if not below else f"**MISSED** on {misses}."))
    if tuned.confidence:
        reports = list(tuned.confidence.values())
        top70 = float(np.mean([dict(r.curve)[TOP_SHARE] for r in reports]))
        worst_ece = max(r.ece_after for r in reports)
        lines.append(f"- Auto-scoring the 70% most sure, mean agreement >= {AUTO_QWK}: {top70:.3f} "
                     f"({_met(top70 >= AUTO_QWK)}).")
        lines += _coverage_lines(reports)
        lines.append(f"- Calibration error after calibration <= {MAX_ECE} on every set: worst {worst_ece:.3f} "
                     f"({_met(worst_ece <= MAX_ECE)}).")
        floors = [r for r in reports if r.ece_floor is not None]
        if floors:
            under = sum(r.ece_after <= r.ece_floor_q95 for r in floors)
            lines.append(f"  At these sizes ({min(r.n for r in floors)}-{max(r.n for r in floors)} responses a set) a "
                         "perfectly calibrated model with the same confidences would show an ECE of "
                         f"{min(r.ece_floor for r in floors):.3f}-{max(r.ece_floor for r in floors):.3f} on average "
                         f"(the table's column): {MAX_ECE} cannot be checked per set on so few responses. The "
                         f"measured ECE is under that model's 95th percentile on {under} of {len(floors)} sets.")
    minutes = results["total_seconds"] / 60
    lines.append(f"- End to end in at most {CPU_MINUTES} minutes on this machine: {minutes:.1f} "
                 f"({_met(minutes <= CPU_MINUTES)}).")
    return "\n".join(lines) + "\n"


def _coverage_lines(reports: list[Any]) -> list[str]:
    """The conformal sets' coverage of the test responses, all sets together (the target) with its Wilson
    interval, and per set with how many sets' own intervals hold the nominal level."""
    from scipy.stats import binomtest

    sets = [(round(r.coverage * r.n), r.n) for r in reports if r.coverage is not None]
    k, n = sum(c for c, _ in sets), sum(m for _, m in sets)
    ci = binomtest(k, n).proportion_ci(method="wilson")
    holds = sum(ci_.low <= LEVEL <= ci_.high for ci_ in (binomtest(c, m).proportion_ci(method="wilson")
                                                        for c, m in sets))
    return [f"- 90% score sets cover {COVERAGE[0]:.0%}-{COVERAGE[1]:.0%} of test responses: {k / n:.1%} "
            f"[{ci.low:.1%}, {ci.high:.1%}] of the {n:,} ({_met(COVERAGE[0] <= k / n <= COVERAGE[1])}); per set "
            f"{min(c / m for c, m in sets):.1%}-{max(c / m for c, m in sets):.1%}, {LEVEL:.0%} inside the set's own "
            f"95% interval on {holds} of {len(sets)} sets."]


# ------------------------------------------------------------------------------------------ main
def best_teacher(done: dict[str, Any], names: list[str]) -> Path:
    """The model folder of the teacher (or ensemble) with the best mean test QWK: the one `predict` checks."""
    candidates = {f"teacher_{n}": done[f"teacher_{n}"] for n in names}
    if done.get("ensemble"):
        candidates["ensemble"] = done["ensemble"]
    best = max(candidates.values(), key=lambda r: r["splits"]["test"]["score"])
    return Path(best["model_dir"])


def main() -> int:
    parser = bench_parser(__doc__, "bench/quality.cpu.yaml", "runs/quality", "teachers.mpnet.train.epochs=1")
    args = parser.parse_args()
    cfg, work = open_workdir(parser, args, ("data", "teachers", "tune"), per_stage=True)
    tracking = f"sqlite:///{work / 'mlflow.db'}"

    import torch

    gpu = torch.cuda.is_available()
    names = [n for n, t in cfg["teachers"].items() if gpu or not t.get("gpu")]
    gpu_skipped = [n for n in cfg["teachers"] if n not in names]
    if not names:
        parser.error(f"{args.config}: every teacher needs a GPU and none is visible")
    dirs = [work / f"teacher_{n}" for n in names]
    teacher_dir = work / "ensemble" if len(names) > 1 else dirs[0]
    try:
        check_configs(cfg, work, teacher_dir)
    except ConfigError as e:
        parser.error(f"{args.config}: {e}")
    stages: dict[str, Any] = {f"teacher_{n}": (lambda n=n, d=d: teacher_stage(teacher_config(cfg, n), d, tracking))
                              for n, d in zip(names, dirs, strict=True)}
    if len(names) > 1:
        stages["ensemble"] = lambda: ensemble_stage(dirs, cfg.get("ensemble", {}).get("weights", "mean"),
                                                    teacher_dir, tracking)
    stages["tfidf"] = lambda: tfidf_stage(dirs[0], False)
    stages["tune"] = lambda: tune_stage(cfg["tune"], teacher_dir, work / "tune", tracking)
    stacks = [d for n, d in zip(names, dirs, strict=True) if teacher_config(cfg, n)["model"].get("kind") == "stack"]
    if stacks and cfg.get("crossfit", {}).get("seeds", 1) > 0:
        stages["crossfit"] = lambda: crossfit_stage(tune_config(cfg["tune"], stacks[0], work / "tune"),
                                                    done["tune"]["winner"]["params"], stacks[0],
                                                    cfg.get("crossfit", {}).get("seeds", 1))
    stages["predict"] = lambda: predict_stage(best_teacher(done, names), teacher_dir)
    # What each stage reads: a cached stage stays valid while its share of the config is unchanged.
    teacher_inputs = {n: teacher_config(cfg, n) for n in names}
    inputs = {**{f"teacher_{n}": c for n, c in teacher_inputs.items()},
              "ensemble": {"teachers": teacher_inputs, "ensemble": cfg.get("ensemble")},
              "tfidf": teacher_inputs[names[0]],
              "tune": {"teachers": teacher_inputs, "ensemble": cfg.get("ensemble"), "tune": cfg["tune"]},
              "crossfit": {"teachers": teacher_inputs, "tune": cfg["tune"], "crossfit": cfg.get("crossfit")},
              "predict": {"teachers": teacher_inputs, "ensemble": cfg.get("ensemble")}}
    t0 = time.time()
    done: dict[str, Any] = {}
    seconds: dict[str, float | None] = {}
    only = run_stages(parser, stages, work, args.only, done, seconds, inputs)
    if only:
        print(f"[quality] ran {', '.join(only)} in {(time.time() - t0) / 60:.1f} min", flush=True)
        return 0
    # Cached stages count with the time they took when they ran.
    total = sum(s for s in seconds.values() if s)
    results = {"config": cfg, "machine": machine(), "command": f".venv/bin/python -m bench.quality --config "
               f"{args.config} --workdir {args.workdir}" + "".join(f" --set {x}" for x in args.set),
               "teachers": {n: done[f"teacher_{n}"] for n in names}, "ensemble": done.get("ensemble"),
               "tfidf": done["tfidf"], "tune": done["tune"], "crossfit": done.get("crossfit"),
               "predict": done.get("predict"), "stage_seconds": seconds, "total_seconds": total,
               "gpu_not_run": gpu_skipped}
    write_text_atomic(work / "results.json", json.dumps(results, indent=2, default=str))
    page = report(results, gpu_skipped)
    write_text_atomic(work / "report.md", page)
    print(page, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
