"""The full benchmark, one command: quality, size, speed and cost growth, then the report.

    .venv/bin/python -m bench.run_all --config bench/config.yaml --workdir runs/bench

Stages (each cached in --workdir, so an interrupted run picks up where it stopped):
  1. MiniLM teacher on all 10 ASAP-SAS sets; LSTM per set + one MoE, KD and no-KD; TF-IDF + LR per set
  2. MiniLM teacher on SemEval-2013 SciEntsBank 2-way + Beetle 3-way (question + reference + answer);
     students and TF-IDF the same way; Beetle 2-way scored by collapsing 3-way predictions
  3. CPU inference responses/s at batch 1 and 64, teacher and students in the same process
  4. serving under load with wrk (bench/serve_load.py): MoE and LSTM students and the teacher behind one ingress,
     1-256 connections, a replica killed under load, `raykd predict` streaming 1,000,000 responses
  5. teacher training samples/s with 1 and 2 Ray Train workers
  6. student training and inference time against dataset size
  6b. (when configured) knowledge tracing on ASSISTments 2009: `raykd kt` with the config named by `kt.config`
  7. (when configured) LLM teacher training throughput with LoRA, e.g. a gpt-oss-20b-shaped model on a GPU
  8. bench.report: Markdown + PNG plots, logged to MLflow
All numbers are measured in this run on this machine; speeds are reported as ratios. On a GPU machine:
    .venv/bin/python -m bench.run_all --config bench/config.gpu.yaml --workdir runs/bench-gpu
`--only stage,...` runs some stages now (the report needs them all); `--set key=value` overrides the config.
A workdir belongs to one config: a changed config needs a new --workdir.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from raykd.config import apply_overrides, from_dict
from raykd.distill.config import DistillConfig, DistillJobConfig, StudentConfig
from raykd.errors import ConfigError
from raykd.io import write_text_atomic
from raykd.teacher.config import TeacherJobConfig


def cached(path: Path, fn: Any, inputs: Any = None) -> tuple[dict, float | None]:
    """A stage's result and its run time in seconds: from `path` when an earlier run saved it, else by
    running `fn` and saving both (the time inside the saved result, as `stage_seconds`). With `inputs` (the config
    the stage reads), a saved result made from other inputs is an error, never silently reused."""
    if path.exists():
        print(f"[bench] cached: {path}", flush=True)
        return load_saved(path, inputs)
    t0 = time.time()
    value = json.loads(json.dumps(fn(), default=_plain))
    value.setdefault("stage_seconds", time.time() - t0)
    if inputs is not None:
        value["stage_inputs"] = inputs
    write_text_atomic(path, json.dumps(value, indent=2))
    return split_time(value)


def load_saved(path: Path, inputs: Any = None) -> tuple[dict, float | None]:
    """A saved stage result and its seconds; with `inputs`, one made from other inputs is an error."""
    saved = json.loads(path.read_text())
    if inputs is not None and saved.get("stage_inputs") != json.loads(json.dumps(inputs)):
        raise SystemExit(f"{path} was made from a different config for this stage; delete it (and its folder) "
                         "to rerun the stage, or use a new --workdir")
    return split_time(saved)


def split_time(saved: dict) -> tuple[dict, float | None]:
    seconds = saved.pop("stage_seconds", None)
    saved.pop("stage_inputs", None)
    return saved, seconds


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if is_dataclass(v):
        return asdict(v)
    return str(v)


def typed(cls: type, value: Any) -> Any:
    """A stage's result as its dataclass (cached stages come back from JSON)."""
    from pydantic import TypeAdapter

    return value if isinstance(value, cls) else TypeAdapter(cls).validate_python(value)


def teacher_job_config(cfg: dict, out: Path, where: str = "config") -> TeacherJobConfig:
    tcfg = from_dict(TeacherJobConfig, {**cfg, "output_dir": str(out)}, where)
    return tcfg


def teacher_stage(cfg: dict, out: Path, tracking: str) -> Any:
    from raykd.teacher.job import run_teacher

    return run_teacher(teacher_job_config(cfg, out), tracking_uri=tracking)


def distill_stage(teacher_dir: Path, students: dict, distill: dict, out: Path, tracking: str) -> Any:
    from raykd.distill.job import run_distill

    dcfg = DistillJobConfig(name=out.name, output_dir=str(out), teacher=str(teacher_dir),
                            students={k: from_dict(StudentConfig, v) for k, v in students.items()},
                            distill=from_dict(DistillConfig, distill))
    return run_distill(dcfg, tracking_uri=tracking)


def check_configs(cfg: dict, work: Path) -> None:
    """The teachers' and students' configs typed and validated before the first stage runs (the other stages
    build theirs in code): a typo in a late section fails at once, not after the teachers."""
    from_dict(DistillConfig, cfg["distill"], "distill")
    for name in ("asap", "semeval"):
        teacher_job_config(cfg[f"{name}_teacher"], work / f"teacher_{name}", f"{name}_teacher")
        for student, value in cfg[f"{name}_students"].items():
            where = f"{name}_students.{student}"
            from_dict(StudentConfig, value, where)


def prepared(teacher_dir: Path) -> Any:
    """The dataset the teacher stage prepared (never split again here)."""
    from raykd.data.preparation import reuse

    return reuse(teacher_dir, None, "bench")


def tfidf_stage(teacher_dir: Path, include_question: bool) -> dict:
    from bench.baselines import fit_tfidf, score_tfidf

    ds = prepared(teacher_dir)
    out = {}
    for task, spec in ds.tasks.items():
        f = ds.frame[(ds.frame["task"] == task) & ds.frame["y"].notna()]
        model = fit_tfidf(f[f["split"].isin(["train", "validation"])], spec, include_question)
        out[task] = score_tfidf(model, f[f["split"] == "test"], spec, include_question)
    return out


def beetle_two_way(distill_result: Any, teacher_dir: Path) -> dict:
    """Beetle 2-way accuracy / macro-F1 on unseen answers, from 3-way predictions (correct vs not)."""
    from raykd import metrics
    from raykd.distill.job import DistillResult
    from raykd.scoring import load_scorer

    ds = prepared(teacher_dir)
    test = ds.frame[(ds.frame["task"] == "beetle_3way") & (ds.frame["split"] == "test")]
    if test.empty:
        return {}
    correct = ds.tasks["beetle_3way"].labels.index("correct")
    gold = (np.asarray(test["y"].tolist()) == correct).astype(int)
    models = {"teacher": str(teacher_dir / "model")}
    for s in typed(DistillResult, distill_result).students:
        if "beetle_3way" in s.tasks:
            models[f"{s.family} {s.variant}"] = s.model_dir
    out = {}
    for name, path in models.items():
        scorer = load_scorer(path)
        probs = np.stack(scorer.predict_proba(test["text"].tolist(), test["task"].tolist(), test["question"].tolist(),
                                              test["reference"].tolist()))
        pred = (probs.argmax(1) == correct).astype(int)
        out[name] = {"accuracy": metrics.accuracy(gold, pred), "macro_f1": metrics.macro_f1(gold, pred)}
    return out


def speed_stage(teacher_dir: Path, distill_result: Any, n: int) -> dict:
    from raykd.distill.job import DistillResult
    from raykd.footprint import dir_bytes, throughput
    from raykd.scoring import load_scorer

    ds = prepared(teacher_dir)
    rows = ds.frame[ds.frame["split"] == "test"].sample(n=n, random_state=0)
    texts, tasks = rows["text"].tolist(), rows["task"].tolist()
    import torch

    # (path, device): every ratio is against the teacher on CPU; a GPU teacher row is added for context.
    models = {"teacher": (str(teacher_dir / "model"), "cpu")}
    if torch.cuda.is_available():
        models["teacher_gpu"] = (str(teacher_dir / "model"), "cuda")
    d = typed(DistillResult, distill_result)
    moe = next(s for s in d.students if s.family == "moe" and s.variant == "kd")
    models["moe_kd"] = (moe.model_dir, "cpu")
    lstm_one = next(s for s in d.students if s.family == "lstm" and s.variant == "kd")
    models["lstm_kd"] = (lstm_one.model_dir, "cpu")
    out: dict[str, Any] = {}
    for name, (path, device) in models.items():
        scorer = load_scorer(path, device=device)
        t = tasks if name != "lstm_kd" else [lstm_one.tasks[0]] * len(tasks)
        sample = texts[:64] if name == "teacher" else texts  # batch-1 teacher calls are slow: a smaller sample
        out[name] = {"parameters": scorer.num_parameters, "bytes": dir_bytes(path), "device": device,
                     "batch1_per_s": throughput(scorer, sample, t[: len(sample)], 1),
                     "batch64_per_s": throughput(scorer, texts, t, 64)}
    for name in list(out):
        if name != "teacher":
            out[name]["speedup_batch1"] = out[name]["batch1_per_s"] / out["teacher"]["batch1_per_s"]
            out[name]["speedup_batch64"] = out[name]["batch64_per_s"] / out["teacher"]["batch64_per_s"]
            out[name]["param_ratio"] = out[name]["parameters"] / out["teacher"]["parameters"]
    return out


def serve_load_stage(teacher_dir: Path, distill_result: Any, cfg: dict, work: Path) -> Any:
    """Serving under load (bench/serve_load.py): the one-model MoE and the set-1 LSTM KD students."""
    from serve_load import run as load_run

    from raykd.distill.job import DistillResult

    d = typed(DistillResult, distill_result)
    students = {"moe_kd": d.student("moe", "kd", "asap_1").model_dir,
                "lstm_kd": d.student("lstm", "kd", "asap_1").model_dir}
    report = load_run(students, str(teacher_dir / "model"), work / "serve_load", seconds=cfg["seconds"],
                      connections=tuple(cfg["connections"]), predict_n=cfg["predict_responses"],
                      command="bench/serve_load.py (stage serve_load)")
    return report


def train_throughput_stage(base: dict, cfg: dict, work: Path, tracking: str) -> dict:
    out = {}
    for workers in cfg["workers"]:
        tcfg = copy.deepcopy(base)
        tcfg["name"] = f"bench-train-{workers}w"
        tcfg["data"] = {**tcfg["data"], "options": {"sets": [1]}, "include_unlabelled": False}
        tcfg["train"] = {**tcfg["train"], "epochs": 1, "max_steps_per_epoch": cfg["steps"], "log_every": 5}
        tcfg["scaling"] = {**tcfg["scaling"], "num_workers": workers, "cpus_per_worker": 0.5}
        tcfg["export"] = {**tcfg["export"], "enabled": False}
        res = teacher_stage(tcfg, work / f"train_{workers}w", tracking)
        out[str(workers)] = {"samples_per_s": res.metrics["train_samples_per_s"],
                             "steady_samples_per_s": res.metrics.get("train_steady_samples_per_s")}
    return out


def llm_throughput_stage(cfg: dict, work: Path, tracking: str) -> dict:
    """Training samples/s of an LLM teacher with LoRA (a random model shaped like the real one)."""
    res = teacher_stage({**cfg, "export": {"enabled": False}}, work / "train_llm", tracking)
    return {"parameters": res.parameters, **res.metrics, "model": cfg["model"], "lora": cfg.get("lora", {}),
            "batch_size": cfg["train"]["batch_size"], "zero_stage": cfg.get("deepspeed", {}).get("zero_stage")}


def machine() -> dict:
    import os
    import platform

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpus": os.cpu_count(), "gpu": gpu, "gpus": torch.cuda.device_count(), "torch": torch.__version__,
            "python": platform.python_version()}


def growth_stage(cfg: dict) -> dict:
    from raykd.data import data_dir, make_splits, read_asap
    from raykd.distill.train import fit_student, save_fit
    from raykd.footprint import throughput
    from raykd.heads import TaskLayout
    from raykd.students.artifact import StudentScorer

    ds = make_splits(read_asap(data_dir() / "asap_sas"), seed=0)
    pool = ds.frame[ds.frame["split"] == "train"]
    val = ds.frame[ds.frame["split"] == "validation"]
    layout = TaskLayout.of(ds.tasks)
    out = {}
    for size in cfg["sizes"]:
        train = pool.sample(n=min(size, len(pool)), random_state=0)
        fit = fit_student(StudentConfig(arch="lstm", per_task=False), DistillConfig(kd_weight=0.0, epochs=cfg["epochs"],
                                                                                    patience=cfg["epochs"]),
                          train, val, layout)
        path = save_fit(fit, Path("/tmp") / f"raykd-growth-{size}")
        sample = val.head(1000)
        rps = throughput(StudentScorer(path), sample["text"].tolist(), sample["task"].tolist(), 64)
        out[str(len(train))] = {"train_seconds_per_epoch": fit.seconds / fit.epochs_run, "inference_per_s": rps,
                                "parameters": fit.parameters}
        print(f"[bench] growth {len(train)} responses: {fit.seconds / fit.epochs_run:.1f}s/epoch, "
              f"{rps:.0f} responses/s", flush=True)
    return out


def kt_stage(cfg: dict, work: Path, tracking: str) -> dict:
    """Knowledge tracing (raykd kt): the config file named by `config`, written under the workdir."""
    from raykd.config import load_config
    from raykd.kt.config import KTJobConfig
    from raykd.kt.job import KTDistillResult, KTTeacherResult, distill_dir, run_kt, teacher_dir
    from raykd.pipeline import load_result

    kt = load_config(cfg["config"], KTJobConfig, [*cfg.get("set", []), f"output_dir={work / 'kt'}"])
    simulation = run_kt(kt, tracking_uri=tracking)
    return {"teacher": asdict(load_result(KTTeacherResult, Path(teacher_dir(kt)) / "kt_teacher_result.json")),
            "distill": asdict(load_result(KTDistillResult, Path(distill_dir(kt)) / "kt_distill_result.json")),
            "simulation": asdict(simulation), "plot": str(Path(distill_dir(kt)) / "simulation.png"),
            "config": cfg["config"]}


def bench_parser(doc: str, config: str, workdir: str, set_example: str) -> argparse.ArgumentParser:
    """The arguments every benchmark takes: --config, --workdir, --only and repeatable --set overrides."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=config)
    parser.add_argument("--workdir", default=workdir)
    parser.add_argument("--only", default="", help="comma-separated stages to run now (the report waits for all)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override a config value, e.g. {set_example} (repeatable)")
    return parser


def run_stages(parser: argparse.ArgumentParser, stages: dict[str, Any], work: Path, only_arg: str,
               results: dict[str, Any], seconds: dict[str, float | None],
               inputs: dict[str, Any] | None = None) -> list[str]:
    """Run `stages` in order (each may read the results of those before it), each cached in `work`, into
    `results` and `seconds`; with `--only`, just those, reading the others' saved results where they exist.
    `inputs`: each stage's share of the config, checked against its cached result (see `cached`).
    Returns the --only list (empty: everything ran)."""
    only = [x for x in only_arg.split(",") if x]
    unknown = sorted(set(only) - set(stages))
    if unknown:
        parser.error(f"--only: unknown stage {unknown[0]!r} (stages: {', '.join(stages)})")
    from raykd.runtime import ensure_ray

    ensure_ray()
    for name, fn in stages.items():
        path, stage_inputs = work / f"{name}.json", (inputs or {}).get(name)
        if only and name not in only:
            if path.exists():  # later stages may need it
                results[name], seconds[name] = load_saved(path, stage_inputs)
            continue
        results[name], seconds[name] = cached(path, fn, stage_inputs)
    return only


def open_workdir(parser: argparse.ArgumentParser, args: argparse.Namespace,
                 sections: tuple[str, ...], per_stage: bool = False) -> tuple[dict, Path]:
    """The config (`--config` with every `--set`; each of `sections` required) and the workdir, which is stamped
    with it: cached stages are only valid for the config that made them. `per_stage`: the caller checks each
    stage's inputs instead (run_stages), so changing a late stage's config keeps the earlier stages."""
    if not Path(args.config).is_file():
        parser.error(f"--config {args.config}: no such file")
    cfg = apply_overrides(yaml.safe_load(Path(args.config).read_text()) or {}, args.set)
    missing = [s for s in sections if not cfg.get(s)]
    if missing:
        parser.error(f"{args.config}: missing section {missing[0]!r}")
    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    stamp = work / "config.json"
    if not per_stage and stamp.exists() and json.loads(stamp.read_text()) != cfg:
        parser.error(f"{work} holds stages of a different config ({stamp}); use a new --workdir")
    write_text_atomic(stamp, json.dumps(cfg, indent=2))
    return cfg, work


def main() -> int:
    parser = bench_parser(__doc__, "bench/config.yaml", "runs/bench", "asap_teacher.train.epochs=3")
    args = parser.parse_args()
    cfg, work = open_workdir(parser, args, ("asap_teacher", "semeval_teacher", "asap_students", "semeval_students",
                                            "distill"))
    try:
        check_configs(cfg, work)
    except ConfigError as e:
        parser.error(f"{args.config}: {e}")
    tracking = f"sqlite:///{work / 'mlflow.db'}"
    t0 = time.time()
    results: dict[str, Any] = {"config": cfg, "machine": machine(),
                               "command": f".venv/bin/python -m bench.run_all --config {args.config} "
                                          f"--workdir {args.workdir}" + "".join(f" --set {x}" for x in args.set)}
    at, st, r = cfg["asap_teacher"], cfg["semeval_teacher"], results
    # In order: each stage may read the results of those before it.
    stages: dict[str, Any] = {
        "asap_teacher": lambda: teacher_stage(at, work / "teacher_asap", tracking),
        "asap_distill": lambda: distill_stage(work / "teacher_asap", cfg["asap_students"], cfg["distill"],
                                              work / "distill_asap", tracking),
        "asap_tfidf": lambda: tfidf_stage(work / "teacher_asap", False),
        "semeval_teacher": lambda: teacher_stage(st, work / "teacher_semeval", tracking),
        "semeval_distill": lambda: distill_stage(work / "teacher_semeval", cfg["semeval_students"], cfg["distill"],
                                                 work / "distill_semeval", tracking),
        "semeval_tfidf": lambda: tfidf_stage(work / "teacher_semeval", True),
        "beetle_2way": lambda: beetle_two_way(r["semeval_distill"], work / "teacher_semeval"),
        "speed": lambda: speed_stage(work / "teacher_asap", r["asap_distill"], cfg["speed"]["responses"]),
        "serve_load": lambda: serve_load_stage(work / "teacher_asap", r["asap_distill"], cfg["serve_load"], work),
        "train_throughput": lambda: train_throughput_stage(at, cfg["train_throughput"], work, tracking),
        "growth": lambda: growth_stage(cfg["growth"]),
    }
    if cfg.get("kt"):
        stages["kt"] = lambda: kt_stage(cfg["kt"], work, tracking)
    if cfg.get("llm_throughput"):
        stages["llm_throughput"] = lambda: llm_throughput_stage(cfg["llm_throughput"], work, tracking)
    results["stage_seconds"] = {}
    only = run_stages(parser, stages, work, args.only, results, results["stage_seconds"])
    if only:
        print(f"[bench] ran {', '.join(only)} in {(time.time() - t0) / 60:.1f} min", flush=True)
        return 0
    results["total_seconds"] = time.time() - t0
    write_text_atomic(work / "results.json", json.dumps(results, indent=2, default=_plain))

    from bench.report import build_report

    page = build_report(work / "results.json", work / "report", tracking_uri=tracking)
    print(f"[bench] done in {(time.time() - t0) / 60:.1f} min; report: {page}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
