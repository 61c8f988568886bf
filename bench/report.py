"""One Markdown page with tables and PNG plots from a benchmark run (bench/run_all.py), which writes it at its end;
`python -m bench.report --results runs/bench/results.json` rebuilds it.

The run's results.json is read into `BenchResults`: typed, validated stage results (the stages' own result
classes: TeacherResult, DistillResult, LoadReport, and the small ones below). Every figure names the command
that produced it, and the targets section (bench.targets) says plainly where a student falls short.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench import targets as t
from bench.load_report import LoadReport
from raykd.data.asap import SCIENCE_SETS
from raykd.distill.job import DistillResult
from raykd.io import write_text_atomic
from raykd.kt.results import KTDistillResult, KTSimulateResult, KTTeacherResult
from raykd.tables import cell, markdown
from raykd.teacher.job import TeacherResult

BENCH_CMD = ".venv/bin/python -m bench.run_all --config bench/config.yaml --workdir runs/bench"
FAMILIES = (("lstm", "LSTM"), ("moe", "MoE"))
VARIANT_NAMES = {"kd": "KD", "nokd": "no-KD"}


@dataclass
class SpeedRow:
    """One model's inference speed in one process (the `speed` stage); ratios against the CPU teacher."""

    parameters: int
    bytes: int
    batch1_per_s: float
    batch64_per_s: float
    device: str = "cpu"
    speedup_batch1: float = 1.0
    speedup_batch64: float = 1.0
    param_ratio: float = 1.0


@dataclass
class TrainRate:
    samples_per_s: float
    steady_samples_per_s: float | None = None


@dataclass
class GrowthRow:
    train_seconds_per_epoch: float
    inference_per_s: float
    parameters: int


@dataclass
class LLMThroughput:
    parameters: dict[str, int]
    train_samples_per_s: float
    batch_size: int
    zero_stage: int | None
    model: dict[str, Any]
    lora: dict[str, Any] = field(default_factory=dict)
    train_steady_samples_per_s: float | None = None
    gpu_max_memory_gb: float | None = None
    fit_seconds: float | None = None


@dataclass
class KTBench:
    """The knowledge-tracing stage of the bench: the three stage results and the simulation plot."""

    teacher: KTTeacherResult
    distill: KTDistillResult
    simulation: KTSimulateResult
    plot: str
    config: str


@dataclass
class BenchResults:
    """Everything one benchmark run measured, stage by stage (absent stages are None or empty)."""

    command: str = BENCH_CMD
    machine: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    stage_seconds: dict[str, float | None] = field(default_factory=dict)
    asap_teacher: TeacherResult | None = None
    asap_distill: DistillResult | None = None
    asap_tfidf: dict[str, dict[str, float]] = field(default_factory=dict)
    semeval_teacher: TeacherResult | None = None
    semeval_distill: DistillResult | None = None
    semeval_tfidf: dict[str, dict[str, float]] = field(default_factory=dict)
    beetle_2way: dict[str, dict[str, float]] = field(default_factory=dict)  # "teacher", "lstm kd", ... -> metrics
    speed: dict[str, SpeedRow] = field(default_factory=dict)
    serve_load: LoadReport | None = None
    train_throughput: dict[str, TrainRate] = field(default_factory=dict)
    growth: dict[str, GrowthRow] = field(default_factory=dict)
    llm_throughput: LLMThroughput | None = None
    kt: KTBench | None = None


def load_results(path: str | Path) -> BenchResults:
    from pydantic import TypeAdapter

    data = json.loads(Path(path).read_text())
    known = set(BenchResults.__dataclass_fields__)
    return TypeAdapter(BenchResults).validate_python({k: v for k, v in data.items() if k in known})


# ------------------------------------------------------------------------------------------------ tables
def _set_of(task: str) -> int:
    return int(task.split("_")[1])


def columns(d: DistillResult) -> list[tuple[str, str, str]]:
    """(family, variant, heading) of the students in the report's tables."""
    return [(f, v, f"{name} {VARIANT_NAMES[v]}") for f, name in FAMILIES for v in VARIANT_NAMES if f in d.families]


def asap_rows(r: BenchResults) -> tuple[list[str], list[list[Any]], dict[str, dict[str, float]]]:
    """Test QWK per set (teacher, students, TF-IDF), the science-set and all-set means."""
    d = r.asap_distill
    tasks = sorted(d.teacher.test.tasks, key=_set_of)
    cols = [("teacher", None, "teacher"), *columns(d), ("tfidf", None, "TF-IDF+LR")]

    def value(key: str, variant: str | None, task: str) -> float | None:
        if key == "teacher":
            return d.teacher.test.tasks[task]["qwk"]
        if key == "tfidf":
            return r.asap_tfidf.get(task, {}).get("qwk")
        return d.metric(key, variant, task, "qwk")

    rows, science, every = [], {c[2]: [] for c in cols}, {c[2]: [] for c in cols}
    for task in tasks:
        values = [value(k, v, task) for k, v, _ in cols]
        n = _set_of(task)
        rows.append([f"**{n}** (science)" if n in SCIENCE_SETS else str(n), *values])
        for (_, _, name), x in zip(cols, values, strict=True):
            if x is not None:
                every[name].append(x)
                if n in SCIENCE_SETS:
                    science[name].append(x)
    means = {"science": {k: float(np.mean(v)) for k, v in science.items() if v},
             "all": {k: float(np.mean(v)) for k, v in every.items() if v}}
    rows.append(["**mean, science sets**", *[means["science"].get(c[2]) for c in cols]])
    rows.append(["mean, all 10 sets", *[means["all"].get(c[2]) for c in cols]])
    return ["set", *[c[2] for c in cols]], rows, means


def semeval_rows(r: BenchResults) -> tuple[list[str], list[list[Any]]]:
    d = r.semeval_distill
    cols = columns(d)
    rows = []
    for task in sorted(d.teacher.test.tasks):
        for metric in ("accuracy", "macro_f1"):
            rows.append([f"{task} {metric}", d.teacher.test.tasks[task][metric],
                         *[d.metric(f, v, task, metric) for f, v, _ in cols],
                         r.semeval_tfidf.get(task, {}).get(metric)])
    if r.beetle_2way:
        for metric in ("accuracy", "macro_f1"):
            rows.append([f"beetle 2-way (from 3-way) {metric}", r.beetle_2way.get("teacher", {}).get(metric),
                         *[r.beetle_2way.get(f"{f} {v}", {}).get(metric) for f, v, _ in cols], None])
    return ["task / metric", "teacher", *[c[2] for c in cols], "TF-IDF+LR"], rows


# -------------------------------------------------------------------------------------------------- plots
def _save(fig: Any, out: Path, name: str) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(out / f"{name}.png", dpi=110)
    plt.close(fig)
    return f"{name}.png"


def plot_qwk_per_set(r: BenchResults, out: Path) -> str:
    import matplotlib.pyplot as plt

    d = r.asap_distill
    tasks = sorted(d.teacher.test.tasks, key=_set_of)
    series = {"teacher": [d.teacher.test.tasks[x]["qwk"] for x in tasks]}
    for f, v, name in columns(d):
        if v == "kd" or f == "lstm":
            series[name] = [d.metric(f, v, x, "qwk") for x in tasks]
    series["TF-IDF+LR"] = [r.asap_tfidf.get(x, {}).get("qwk") for x in tasks]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    x = np.arange(len(tasks))
    w = 0.8 / len(series)
    for i, (name, vals) in enumerate(series.items()):
        ax.bar(x + i * w, [v or 0 for v in vals], w, label=name)
    ax.set_xticks(x + 0.4 - w / 2, [f"set {_set_of(s)}" + ("*" if _set_of(s) in SCIENCE_SETS else "") for s in tasks])
    ax.set_ylabel("test QWK")
    ax.set_title("ASAP-SAS QWK per set (* science sets)")
    ax.legend(fontsize=8, ncol=5, loc="lower center")
    return _save(fig, out, "qwk_per_set")


def plot_quality_vs_size(r: BenchResults, means: dict[str, dict[str, float]], out: Path) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    points = [("teacher", "teacher", "teacher"), ("MoE KD", "moe_kd", "MoE KD"),
              ("LSTM KD (per set)", "lstm_kd", "LSTM KD")]
    for name, speed_key, mean_key in points:
        if speed_key in r.speed and mean_key in means["all"]:
            p, q = r.speed[speed_key].parameters, means["all"][mean_key]
            ax.scatter([p], [q], s=80)
            ax.annotate(name, (p, q), textcoords="offset points", xytext=(6, 4))
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("mean test QWK, all 10 ASAP-SAS sets")
    ax.set_title("Quality against size")
    return _save(fig, out, "accuracy_vs_params")


def plot_ratios(r: BenchResults, out: Path) -> str:
    import matplotlib.pyplot as plt

    from bench.load_report import ratios as serve_ratios

    ratios = {f"{name} batch {n}": getattr(r.speed[key], f"speedup_batch{n}")
              for key, name in (("moe_kd", "MoE"), ("lstm_kd", "LSTM")) if key in r.speed for n in (1, 64)}
    if r.serve_load:
        for shape, c, x in serve_ratios(r.serve_load, "moe_kd"):
            if c == 32:
                ratios[f"Serve MoE {'1' if shape == 'single' else '64'}/request, 32 conn."] = x
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.barh(list(ratios), list(ratios.values()), color="tab:green")
    ax.axvline(t.SPEEDUP, color="black", linestyle="--", label=f"{t.SPEEDUP:g}x target")
    ax.set_xscale("log")
    ax.set_xlabel("student / teacher throughput (same run, same CPU)")
    ax.legend()
    return _save(fig, out, "throughput_ratios")


def plot_growth(r: BenchResults, out: Path) -> str:
    import matplotlib.pyplot as plt

    sizes = sorted((int(k), v) for k, v in r.growth.items())
    fig, ax1 = plt.subplots(figsize=(6.5, 4))
    ax1.plot([s for s, _ in sizes], [v.train_seconds_per_epoch for _, v in sizes], "o-", label="train s/epoch")
    ax1.set_xlabel("training responses")
    ax1.set_ylabel("seconds per epoch")
    ax2 = ax1.twinx()
    ax2.plot([s for s, _ in sizes], [v.inference_per_s for _, v in sizes], "s--", color="tab:orange",
             label="inference responses/s")
    ax2.set_ylabel("inference responses/s")
    ax1.set_title("LSTM student cost against dataset size")
    return _save(fig, out, "growth")


# ------------------------------------------------------------------------------------------------ targets
def student_targets(r: BenchResults, means: dict[str, dict[str, float]]) -> list[str]:
    lines = []
    teacher = means["science"]["teacher"]
    for key, name in (("lstm", "LSTM"), ("moe", "MoE")):
        kd, nokd = means["science"].get(f"{name} KD"), means["science"].get(f"{name} no-KD")
        speed = r.speed.get(f"{key}_kd")
        if kd is None or speed is None:
            continue
        gap = teacher - kd
        params_x = 1 / speed.param_ratio
        worst = min(speed.speedup_batch1, speed.speedup_batch64)
        lines.append(f"- {name} KD student: science-set mean QWK {kd:.3f} vs teacher {teacher:.3f} (gap {gap:+.3f}: "
                     f"{t.verdict(gap <= t.GAP)} the {t.GAP} target); {params_x:,.0f}x fewer parameters "
                     f"({t.verdict(params_x >= t.PARAM_RATIO)} >= {t.PARAM_RATIO:g}x); {worst:,.1f}x faster at worst "
                     f"({t.verdict(worst >= t.SPEEDUP)} >= {t.SPEEDUP:g}x).")
        if nokd is not None:
            lines.append(f"  KD vs no-KD on the science sets: {kd:.3f} vs {nokd:.3f} "
                         f"({'KD ahead' if kd > nokd else '**KD not ahead**'}).")
    return lines


def semeval_targets(r: BenchResults) -> list[str]:
    """Per SemEval task: the KD students' macro-F1 against the teacher's, and whether the teacher itself
    beats the TF-IDF baseline (a weak teacher makes the gap target easy to meet)."""
    d = r.semeval_distill
    if d is None:
        return []
    lines = []
    for task in sorted(d.teacher.test.tasks):
        teacher = d.teacher.test.tasks[task]["macro_f1"]
        parts = [f"{name} KD {v:.3f} ({t.verdict(teacher - v <= t.GAP)})" for f, name in FAMILIES
                 if (v := d.metric(f, "kd", task, "macro_f1")) is not None]
        tfidf = r.semeval_tfidf.get(task, {}).get("macro_f1")
        weak = (f"; **the teacher is below TF-IDF+LR ({tfidf:.3f})**, so it is a weak reference here"
                if tfidf is not None and teacher < tfidf else "")
        lines.append(f"- SemEval {task} macro-F1: teacher {teacher:.3f}; {', '.join(parts)}{weak}.")
    return lines


# ------------------------------------------------------------------------------------------------ sections
def teacher_budget(r: BenchResults) -> str:
    parts = []
    for key, name in (("asap_teacher", "ASAP-SAS"), ("semeval_teacher", "SemEval")):
        c = r.config.get(key)
        if c:
            parts.append(f"{name}: {c.get('train', {}).get('epochs', '?')} epoch(s) at "
                         f"{c.get('model', {}).get('max_length', '?')} tokens")
    return "; ".join(parts) or "epochs as configured"


def machine_text(r: BenchResults) -> str:
    m = r.machine
    if not m:
        return "this machine"
    gpu = f"{m['gpus']} x {m['gpu']}" if m.get("gpu") else "no GPU"
    return f"this machine ({m['cpus']} CPU cores, {gpu}; torch {m['torch']})"


def llm_section(r: BenchResults, cmd: str) -> list[str]:
    x = r.llm_throughput
    if x is None:
        return []
    shape = {"num_hidden_layers": x.model.get("tiny_layers"), "hidden_size": x.model.get("tiny_hidden"),
             **x.model.get("tiny_overrides", {})}
    return ["## LLM teacher training throughput (LoRA, Ray Train + DeepSpeed)", "",
            f"A randomly initialised `{x.model.get('tiny')}` model shaped as "
            + ", ".join(f"{k}={v}" for k, v in shape.items() if k != "layer_types")
            + f": {cell(x.parameters.get('total'))} parameters, {cell(x.parameters.get('trainable'))} trainable "
            f"(LoRA r={x.lora.get('r', 64)} on {', '.join(x.lora.get('target_modules', ['q/k/v/o']))}), ZeRO-"
            f"{x.zero_stage}, batch {x.batch_size} x {x.model.get('max_length')} tokens per worker. "
            "Random weights: this measures speed and memory only, never quality.", "",
            markdown(["samples/s (epoch)", "samples/s (after step 1)", "peak GPU memory GiB", "fit seconds"],
                     [[x.train_samples_per_s, x.train_steady_samples_per_s, x.gpu_max_memory_gb, x.fit_seconds]]),
            "", f"*`{cmd}` (stage llm_throughput).*", ""]


def serve_section(r: BenchResults, out: Path, cmd: str) -> list[str]:
    from bench.load_report import markdown as load_markdown
    from bench.load_report import plot

    if r.serve_load is None:
        return []
    plot(r.serve_load, out / "serve_load.png")
    return ["## Serving under load (Ray Serve, HAProxy ingress, wrk)", "",
            load_markdown(r.serve_load, "bench/serve_load.py, run by the command above"), "",
            "![serving under load](serve_load.png)", f"*Figure: `{cmd}` (stage serve_load).*", ""]


def training_sections(r: BenchResults, out: Path, cmd: str) -> list[str]:
    md: list[str] = []
    if r.train_throughput:
        c = r.config.get("asap_teacher", {})
        where = "GPU" if c.get("scaling", {}).get("use_gpu") else "CPU"
        md += [f"## Teacher training throughput (MiniLM, Ray Train + DeepSpeed ZeRO-"
               f"{c.get('deepspeed', {}).get('zero_stage', 2)}, {where})", "",
               markdown(["workers", "samples/s (epoch)", "samples/s (after step 1)"],
                        [[k, v.samples_per_s, v.steady_samples_per_s] for k, v in r.train_throughput.items()]), ""]
        if where == "CPU":
            md += ["Workers on one CPU machine share its cores: the ratio shows how well one machine's cores are "
                   "used, not how a cluster scales.", ""]
    md += llm_section(r, cmd)
    if r.growth:
        asked = r.config.get("growth", {}).get("sizes", [])
        md += ["## Cost against dataset size (LSTM student, all ASAP-SAS sets pooled)", "",
               f"Sizes asked: {', '.join(f'{n:,}' for n in asked)}; a size above the training split runs on all of "
               "it (validation and test rows are never trained on).", "",
               markdown(["training responses", "train s/epoch", "inference resp/s", "parameters"],
                        [[int(k), v.train_seconds_per_epoch, v.inference_per_s, v.parameters]
                         for k, v in sorted(r.growth.items(), key=lambda kv: int(kv[0]))]), "",
               f"![growth]({plot_growth(r, out)})", f"*Figure: `{cmd}` (stage growth).*", ""]
    return md


def kt_section(r: KTBench, out: Path, cmd: str) -> list[str]:
    """Knowledge tracing: test AUC of the teacher and the students, size and speed, the simulated cohort."""
    import shutil

    d, c = r.distill, r.simulation.comparison

    def row(name: str, s: Any) -> list[Any]:
        low, high = s.test_auc_interval
        return [name, f"{s.val_auc:.4f}", f"{s.test_auc:.4f} [{low:.4f}, {high:.4f}]", f"{s.parameters:,}"]

    rows = [row(f"teacher ({r.teacher.description})", r.teacher)]
    if len(r.teacher.members) > 1:
        rows += [[f"teacher member: {m.family}{f' {m.width}' if m.width else ''}, seed {m.seed}"
                  + ("" if m.selected else " (left out on validation)"), f"{m.val_auc:.4f}", f"{m.test_auc:.4f}",
                  f"{m.parameters:,}"] for m in r.teacher.members]
    rows += [row(f"champion DKT (hidden {d.champion.hidden}, lambda {d.champion.kd_weight:g}, "
                 f"T {d.champion.temperature:g})", d.champion),
             row(f"no-KD twin (hidden {d.no_kd_twin.hidden})", d.no_kd_twin)]
    rows += [row(f"trial: hidden {t.hidden}, lambda {t.kd_weight:g}, T {t.temperature:g}, seed {t.seed}", t)
             for t in d.trials]
    settings = [[f"hidden {x.hidden}, lambda {x.kd_weight:g}, T {x.temperature:g}", x.seeds, f"{x.val_auc_mean:.4f}",
                 f"{x.test_auc_mean:.4f} ({x.test_auc_min:.4f} to {x.test_auc_max:.4f})"] for x in d.settings]
    plot = out / "kt_simulation.png"
    if Path(r.plot).is_file():
        shutil.copyfile(r.plot, plot)
    speed = d.speed
    return ["## Knowledge tracing: ASSISTments 2009 (DKVMN split)", "",
            f"`raykd kt --config {r.config}` inside `{cmd}` (stage kt). Next-step AUC on the test file's learners "
            "(95% bootstrap intervals over learners); the champion is chosen on validation AUC.", "",
            markdown(["model", "validation AUC", "test AUC", "parameters"], rows), "",
            *([markdown(["setting", "seeds", "mean validation AUC", "mean test AUC (range)"], settings), ""]
              if settings else []),
            f"Student against teacher, same process, one thread: {r.teacher.parameters / d.champion.parameters:.0f}x "
            f"fewer parameters, {speed.student_batched / speed.teacher_batched:.1f}x the sequences/s in batches of 64, "
            f"{speed.student_single / speed.teacher_single:.1f}x one sequence at a time.", "",
            *([f"The simulator is the champion after {len(d.calibration)} rounds of per-skill bias calibration on "
               "the training learners (raykd.kt.cohort.calibrate; per-skill r of a played training cohort "
               f"{' -> '.join(f'{x.skill_rate_pearson_r:.3f}' for x in d.calibration)}, measured before each "
               f"round's update); its test AUC is {d.simulator_test_auc:.4f}.", ""] if d.calibration else []),
            f"Simulated test cohort ({c.learners:,} learners, {c.interactions:,} attempts; the mean of "
            f"{max(1, len(r.simulation.cohorts))} simulated cohorts): correct rate "
            f"{c.simulated_correct_rate:.3f} simulated against {c.real_correct_rate:.3f} real; per-skill correct "
            f"rates Pearson r = {c.skill_rate_pearson_r:.3f} over {c.skills_compared} skills"
            + (f" (single cohorts: r {min(x for _, x in r.simulation.cohorts):.3f} to "
               f"{max(x for _, x in r.simulation.cohorts):.3f})" if r.simulation.cohorts else "") + ".", "",
            f"![simulated against real]({plot.name})", f"*Figure: `{cmd}` (stage kt).*", ""]


def build_report(results_path: str | Path, out_dir: str | Path, tracking_uri: str | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from bench.load_report import targets as serve_targets

    r = load_results(results_path)
    cmd = r.command
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    header, asap, means = asap_rows(r)
    total = sum(v for v in r.stage_seconds.values() if v is not None)
    md = ["# raykd benchmark report", "",
          f"All numbers from one run of `{cmd}` on {machine_text(r)}; stages took {total / 60:.0f} minutes in all. "
          f"Teachers are MiniLM (all-MiniLM-L6-v2) fine-tuned with Ray Train + DeepSpeed ({teacher_budget(r)}). "
          "Held-back test splits: ASAP-SAS GOLD_test (10% of the Kaggle training set), SemEval-2013 unseen answers.",
          "", "## Targets", "", *student_targets(r, means),
          *(serve_targets(r.serve_load) if r.serve_load else []), *semeval_targets(r), "",
          "## ASAP-SAS: test QWK per set", "", markdown(header, asap), "",
          f"![QWK per set]({plot_qwk_per_set(r, out)})", f"*Figure: `{cmd}` (stage asap_distill, asap_tfidf).*", ""]
    if r.semeval_distill is not None:
        sem_header, sem_rows = semeval_rows(r)
        md += ["## SemEval-2013 Task 7: unseen answers", "", markdown(sem_header, sem_rows), "",
               "Question-aware models (teacher and students) read question, reference answers and answer.", ""]
    md += ["## Size", "",
           markdown(["model", "parameters", "bytes on disk", "parameter ratio"],
                    [[k, v.parameters, v.bytes, "1" if k == "teacher" else f"1/{1 / v.param_ratio:,.0f}"]
                     for k, v in r.speed.items() if k != "teacher_gpu"]), "",
           f"![accuracy vs parameters]({plot_quality_vs_size(r, means, out)})", f"*Figure: `{cmd}` (stage speed).*",
           "", "## Speed (inference in one process; ratios against the teacher on CPU)", "",
           markdown(["model", "device", "batch 1 resp/s", "batch 64 resp/s", "speed-up batch 1", "speed-up batch 64"],
                    [[k, v.device, v.batch1_per_s, v.batch64_per_s, v.speedup_batch1, v.speedup_batch64]
                     for k, v in r.speed.items()]), ""]
    md += serve_section(r, out, cmd)
    md += [f"![throughput ratios]({plot_ratios(r, out)})", f"*Figure: `{cmd}` (stages speed, serve_load).*", ""]
    md += training_sections(r, out, cmd)
    if r.kt is not None:
        md += kt_section(r.kt, out, cmd)
    page = out / "report.md"
    write_text_atomic(page, "\n".join(md) + "\n")
    if tracking_uri:
        import mlflow

        from raykd.tracking import setup_experiment

        with mlflow.start_run(experiment_id=setup_experiment(tracking_uri, "raykd-bench"), run_name="report"):
            mlflow.log_artifacts(str(out), artifact_path="report")
            mlflow.log_metrics({f"asap_science_mean.{k.replace(' ', '_').replace('+', '_')}": v
                                for k, v in means["science"].items()})
    return page


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="runs/bench/results.json", help="results.json written by bench/run_all.py")
    parser.add_argument("--output", default="runs/bench/report", help="folder for report.md and the PNG plots")
    parser.add_argument("--tracking-uri", help="also log the report to this MLflow store")
    args = parser.parse_args()
    print(f"report written to {build_report(args.results, args.output, tracking_uri=args.tracking_uri)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
