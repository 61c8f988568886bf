"""`raykd report`: one Markdown page with tables and PNG plots from a benchmark run (bench/run_all.py).

Every figure names the command that produced it, and the targets section says plainly where a student
falls short (within 0.03 QWK of the teacher, >= 100x fewer parameters, >= 10x faster).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from raykd.data.asap import SCIENCE_SETS
from raykd.io import write_text_atomic
from raykd.targets import GAP as GAP_TARGET
from raykd.targets import PARAM_RATIO as PARAM_TARGET
from raykd.targets import SPEEDUP as SPEED_TARGET

BENCH_CMD = ".venv/bin/python bench/run_all.py --config bench/config.yaml --workdir runs/bench"


def _f(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "-"
    if isinstance(v, int) or (isinstance(v, float) and v >= 1000):
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(c if isinstance(c, str) else _f(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _task_metric(distill: dict, family: str, variant: str, task: str, metric: str) -> float | None:
    for s in distill["students"]:
        fam = s["group"].removesuffix(f"-{task}") if len(s["tasks"]) == 1 else s["group"]
        if fam == family and s["variant"] == variant and task in s["tasks"]:
            return s["test"].get(f"{task}/{metric}")
    return None


def asap_rows(res: dict) -> tuple[list[list[Any]], dict[str, dict[str, float]]]:
    d, tfidf = res["asap_distill"], res["asap_tfidf"]
    tasks = sorted(d["teacher"]["test"], key=lambda t: int(t.split("_")[1]))
    cols = {"teacher": [], "lstm_kd": [], "lstm_nokd": [], "moe_kd": [], "moe_nokd": [], "tfidf": []}
    science = {k: [] for k in cols}
    rows = []
    for task in tasks:
        vals = {"teacher": d["teacher"]["test"][task]["qwk"], "tfidf": tfidf.get(task, {}).get("qwk")}
        for fam in ("lstm", "moe"):
            for var in ("kd", "nokd"):
                vals[f"{fam}_{var}"] = _task_metric(d, fam, var, task, "qwk")
        n = int(task.split("_")[1])
        label = f"**{n}** (science)" if n in SCIENCE_SETS else str(n)
        rows.append([label] + [vals[k] for k in cols])
        for k in cols:
            cols[k].append(vals[k])
            if n in SCIENCE_SETS:
                science[k].append(vals[k])
    means = {"science": {k: float(np.mean([v for v in science[k] if v is not None])) for k in cols},
             "all": {k: float(np.mean([v for v in cols[k] if v is not None])) for k in cols}}
    rows.append(["**mean, science sets**"] + [means["science"][k] for k in cols])
    rows.append(["mean, all 10 sets"] + [means["all"][k] for k in cols])
    return rows, means


def semeval_rows(res: dict) -> list[list[Any]]:
    d, tfidf = res["semeval_distill"], res["semeval_tfidf"]
    rows = []
    for task in sorted(d["teacher"]["test"]):
        for metric in ("accuracy", "macro_f1"):
            row = [f"{task} {metric}", d["teacher"]["test"][task][metric]]
            for fam in ("lstm", "moe"):
                for var in ("kd", "nokd"):
                    row.append(_task_metric(d, fam, var, task, metric))
            row.append(tfidf.get(task, {}).get(metric))
            rows.append(row)
    for metric in ("accuracy", "macro_f1"):
        b = res.get("beetle_2way", {})
        if b:
            rows.append([f"beetle 2-way (from 3-way) {metric}", b.get("teacher", {}).get(metric)]
                        + [b.get(f"{f}_{v}", {}).get(metric) for f in ("lstm", "moe") for v in ("kd", "nokd")] + [None])
    return rows


def plots(res: dict, means: dict, out: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = {}
    d = res["asap_distill"]
    tasks = sorted(d["teacher"]["test"], key=lambda t: int(t.split("_")[1]))
    series = {"teacher": [d["teacher"]["test"][t]["qwk"] for t in tasks],
              "LSTM KD": [_task_metric(d, "lstm", "kd", t, "qwk") for t in tasks],
              "LSTM no-KD": [_task_metric(d, "lstm", "nokd", t, "qwk") for t in tasks],
              "MoE KD": [_task_metric(d, "moe", "kd", t, "qwk") for t in tasks],
              "TF-IDF+LR": [res["asap_tfidf"].get(t, {}).get("qwk") for t in tasks]}
    fig, ax = plt.subplots(figsize=(10, 4.5))
    x = np.arange(len(tasks))
    w = 0.8 / len(series)
    for i, (name, vals) in enumerate(series.items()):
        ax.bar(x + i * w, [v or 0 for v in vals], w, label=name)
    ax.set_xticks(x + 0.4 - w / 2, [f"set {t.split('_')[1]}" + ("*" if int(t.split("_")[1]) in SCIENCE_SETS else "")
                                    for t in tasks])
    ax.set_ylabel("test QWK")
    ax.set_title("ASAP-SAS QWK per set (* science sets)")
    ax.legend(fontsize=8, ncol=5, loc="lower center")
    fig.tight_layout()
    files["qwk_per_set"] = "qwk_per_set.png"
    fig.savefig(out / files["qwk_per_set"], dpi=110)
    plt.close(fig)

    sp = res["speed"]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    points = [("teacher", sp["teacher"]["parameters"], means["all"]["teacher"]),
              ("MoE KD", sp["moe_kd"]["parameters"], means["all"]["moe_kd"]),
              ("LSTM KD (per set)", sp["lstm_kd"]["parameters"], means["all"]["lstm_kd"])]
    for name, p, q in points:
        ax.scatter([p], [q], s=80)
        ax.annotate(name, (p, q), textcoords="offset points", xytext=(6, 4))
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("mean test QWK, all 10 ASAP-SAS sets")
    ax.set_title("Quality against size")
    fig.tight_layout()
    files["accuracy_vs_params"] = "accuracy_vs_params.png"
    fig.savefig(out / files["accuracy_vs_params"], dpi=110)
    plt.close(fig)

    ratios = {"MoE batch 1": sp["moe_kd"]["speedup_batch1"], "MoE batch 64": sp["moe_kd"]["speedup_batch64"],
              "LSTM batch 1": sp["lstm_kd"]["speedup_batch1"], "LSTM batch 64": sp["lstm_kd"]["speedup_batch64"]}
    if res.get("serve_load"):
        from raykd.serve.load_report import load_report
        from raykd.serve.load_report import ratios as serve_ratios

        load = load_report(res["serve_load"])
        for shape, c, x in serve_ratios(load, "moe_kd"):
            if c == 32:
                ratios[f"Serve MoE {'1' if shape == 'single' else '64'}/request, 32 conn."] = x
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.barh(list(ratios), list(ratios.values()), color="tab:green")
    ax.axvline(SPEED_TARGET, color="black", linestyle="--", label="10x target")
    ax.set_xscale("log")
    ax.set_xlabel("student / teacher throughput (same run, same CPU)")
    ax.legend()
    fig.tight_layout()
    files["throughput_ratios"] = "throughput_ratios.png"
    fig.savefig(out / files["throughput_ratios"], dpi=110)
    plt.close(fig)

    g = res.get("growth", {})
    sizes = sorted((int(k), v) for k, v in g.items())
    if sizes:
        fig, ax1 = plt.subplots(figsize=(6.5, 4))
        ax1.plot([s for s, _ in sizes], [v["train_seconds_per_epoch"] for _, v in sizes], "o-", label="train s/epoch")
        ax1.set_xlabel("training responses")
        ax1.set_ylabel("seconds per epoch")
        ax2 = ax1.twinx()
        ax2.plot([s for s, _ in sizes], [v["inference_per_s"] for _, v in sizes], "s--", color="tab:orange",
                 label="inference responses/s")
        ax2.set_ylabel("inference responses/s")
        ax1.set_title("LSTM student cost against dataset size")
        fig.tight_layout()
        files["growth"] = "growth.png"
        fig.savefig(out / files["growth"], dpi=110)
        plt.close(fig)
    return files


def targets(means: dict, res: dict) -> list[str]:
    sp = res["speed"]
    lines = []
    teacher = means["science"]["teacher"]
    for fam, label in (("lstm_kd", "LSTM KD student"), ("moe_kd", "MoE KD student")):
        gap = teacher - means["science"][fam]
        key = fam.split("_")[0] + "_kd"
        params_x = 1 / sp[key]["param_ratio"]
        speed = min(sp[key]["speedup_batch1"], sp[key]["speedup_batch64"])
        lines.append(f"- {label}: science-set mean QWK {means['science'][fam]:.3f} vs teacher {teacher:.3f} "
                     f"(gap {gap:+.3f}: {'met' if gap <= GAP_TARGET else '**MISSED**'} the 0.03 target); "
                     f"{params_x:,.0f}x fewer parameters ({'met' if params_x >= PARAM_TARGET else '**MISSED**'} "
                     f">= 100x); {speed:,.1f}x faster at worst ({'met' if speed >= SPEED_TARGET else '**MISSED**'} "
                     f">= 10x).")
        nokd = means["science"][fam.replace("_kd", "_nokd")]
        lines.append(f"  KD vs no-KD on the science sets: {means['science'][fam]:.3f} vs {nokd:.3f} "
                     f"({'KD ahead' if means['science'][fam] > nokd else '**KD not ahead**'}).")
    if res.get("serve_load"):
        from raykd.serve.load_report import load_report
        from raykd.serve.load_report import targets as serve_targets

        lines += serve_targets(load_report(res["serve_load"]))
    lines += semeval_targets(res)
    return lines


def semeval_targets(res: dict) -> list[str]:
    """Per SemEval task: the KD students' macro-F1 against the teacher's, and whether the teacher itself
    beats the TF-IDF baseline (a weak teacher makes the 0.03 target easy to meet)."""
    d = res.get("semeval_distill")
    if not d:
        return []
    lines = []
    for task in sorted(d["teacher"]["test"]):
        teacher = d["teacher"]["test"][task]["macro_f1"]
        kd = {fam: _task_metric(d, fam, "kd", task, "macro_f1") for fam in ("lstm", "moe")}
        tfidf = res.get("semeval_tfidf", {}).get(task, {}).get("macro_f1")
        parts = []
        for fam, v in kd.items():
            if v is not None:
                verdict = "met" if teacher - v <= GAP_TARGET else "**MISSED**"
                parts.append(f"{'MoE' if fam == 'moe' else 'LSTM'} KD {v:.3f} ({verdict})")
        weak = (f"; **the teacher is below TF-IDF+LR ({tfidf:.3f})**, so it is a weak reference here"
                if tfidf is not None and teacher < tfidf else "")
        lines.append(f"- SemEval {task} macro-F1: teacher {teacher:.3f}; {', '.join(parts)}{weak}.")
    return lines


def teacher_budget(res: dict) -> str:
    cfg = res.get("config", {})
    parts = []
    for key, name in (("asap_teacher", "ASAP-SAS"), ("semeval_teacher", "SemEval")):
        t = cfg.get(key)
        if t:
            parts.append(f"{name}: {t.get('train', {}).get('epochs', '?')} epoch(s) at "
                         f"{t.get('model', {}).get('max_length', '?')} tokens")
    return "; ".join(parts) or "epochs as configured"


def machine_text(res: dict) -> str:
    m = res.get("machine") or {}
    if not m:
        return "this machine"
    gpu = f"{m['gpus']} x {m['gpu']}" if m.get("gpu") else "no GPU"
    return f"this machine ({m['cpus']} CPU cores, {gpu}; torch {m['torch']})"


def llm_section(res: dict, cmd: str) -> list[str]:
    r = res.get("llm_throughput")
    if not r:
        return []
    model, lora = r["model"], r.get("lora", {})
    shape = {**{"num_hidden_layers": model.get("tiny_layers"), "hidden_size": model.get("tiny_hidden")},
             **model.get("tiny_overrides", {})}
    params = r.get("parameters", {})
    return ["## LLM teacher training throughput (LoRA, Ray Train + DeepSpeed)", "",
            f"A randomly initialised `{model.get('tiny')}` model shaped as "
            + ", ".join(f"{k}={v}" for k, v in shape.items() if k != "layer_types")
            + f": {_f(params.get('total'))} parameters, {_f(params.get('trainable'))} trainable "
            f"(LoRA r={lora.get('r', 64)} on {', '.join(lora.get('target_modules', ['q/k/v/o']))}), ZeRO-"
            f"{r.get('zero_stage')}, batch {r['batch_size']} x {model.get('max_length')} tokens per worker. "
            "Random weights: this measures speed and memory only, never quality.", "",
            table(["samples/s (epoch)", "samples/s (after step 1)", "peak GPU memory GiB", "fit seconds"],
                   [[r.get("train_samples_per_s"), r.get("train_steady_samples_per_s"), r.get("gpu_max_memory_gb"),
                     r.get("fit_seconds")]]), "", f"*`{cmd}` (stage llm_throughput).*", ""]


def build_report(results_path: str | Path, out_dir: str | Path, tracking_uri: str | None = None) -> Path:
    res = json.loads(Path(results_path).read_text())
    cmd = res.get("command", BENCH_CMD)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    asap, means = asap_rows(res)
    files = plots(res, means, out)
    sp = res["speed"]
    total = sum(v for v in res.get("stage_seconds", {}).values() if v is not None)
    md = ["# raykd benchmark report", "",
          f"All numbers from one run of `{cmd}` on {machine_text(res)}; stages took "
          f"{total / 60:.0f} minutes in all. Teachers are MiniLM (all-MiniLM-L6-v2) fine-tuned with Ray Train + "
          f"DeepSpeed ({teacher_budget(res)}). Held-back test splits: ASAP-SAS "
          "GOLD_test (10% of the Kaggle training set), SemEval-2013 unseen answers.", "",
          "## Targets", "", *targets(means, res), "",
          "## ASAP-SAS: test QWK per set", "",
          table(["set", "teacher", "LSTM KD", "LSTM no-KD", "MoE KD", "MoE no-KD", "TF-IDF+LR"], asap), "",
          f"![QWK per set]({files['qwk_per_set']})", f"*Figure: `{cmd}` (stage asap_distill, asap_tfidf).*", "",
          "## SemEval-2013 Task 7: unseen answers", "",
          table(["task / metric", "teacher", "LSTM KD", "LSTM no-KD", "MoE KD", "MoE no-KD", "TF-IDF+LR"],
                 semeval_rows(res)), "",
          "Students read `question || answer`; the teacher reads question, reference answer and answer.", "",
          "## Size", "",
          table(["model", "parameters", "bytes on disk", "parameter ratio"],
                 [[k, v["parameters"], v["bytes"], "1" if k == "teacher" else f"1/{1 / v['param_ratio']:,.0f}"]
                  for k, v in sp.items() if k != "teacher_gpu"]), "",
          f"![accuracy vs parameters]({files['accuracy_vs_params']})", f"*Figure: `{cmd}` (stage speed).*", "",
          "## Speed (inference in one process; ratios against the teacher on CPU)", "",
          table(["model", "device", "batch 1 resp/s", "batch 64 resp/s", "speed-up batch 1", "speed-up batch 64"],
                 [[k, v.get("device", "cpu"), v["batch1_per_s"], v["batch64_per_s"], v.get("speedup_batch1", 1.0),
                   v.get("speedup_batch64", 1.0)] for k, v in sp.items()]), ""]
    if res.get("serve_load"):
        from raykd.serve.load_report import load_report, markdown, plot

        load = load_report(res["serve_load"])
        plot(load, out / "serve_load.png")
        md += ["## Serving under load (Ray Serve, HAProxy ingress, wrk)", "",
               markdown(load, "bench/serve_load.py, run by the command above"), "",
               "![serving under load](serve_load.png)", f"*Figure: `{cmd}` (stage serve_load).*", ""]
    md += [f"![throughput ratios]({files['throughput_ratios']})", f"*Figure: `{cmd}` (stages speed, serve).*",
           ""]
    tt = res.get("train_throughput", {})
    if tt:
        t_cfg = res.get("config", {}).get("asap_teacher", {})
        where = "GPU" if t_cfg.get("scaling", {}).get("use_gpu") else "CPU"
        md += [f"## Teacher training throughput (MiniLM, Ray Train + DeepSpeed ZeRO-"
               f"{t_cfg.get('deepspeed', {}).get('zero_stage', 2)}, {where})", "",
               table(["workers", "samples/s (epoch)", "samples/s (after step 1)"],
                      [[k, v["samples_per_s"], v.get("steady_samples_per_s")] for k, v in tt.items()]),
               ""]
        if where == "CPU":
            md += ["Workers on one CPU machine share its cores: the ratio shows how well one machine's cores are "
                   "used, not how a cluster scales.", ""]
    md += llm_section(res, cmd)
    g = res.get("growth", {})
    if g:
        asked = res.get("config", {}).get("growth", {}).get("sizes", [])
        md += ["## Cost against dataset size (LSTM student, all ASAP-SAS sets pooled)", "",
               f"Sizes asked: {', '.join(f'{n:,}' for n in asked)}; a size above the training split runs on all of "
               "it (validation and test rows are never trained on).", "",
               table(["training responses", "train s/epoch", "inference resp/s", "parameters"],
                      [[int(k), v["train_seconds_per_epoch"], v["inference_per_s"], v["parameters"]]
                       for k, v in sorted(g.items(), key=lambda kv: int(kv[0]))]),
               ""]
        if "growth" in files:
            md += [f"![growth]({files['growth']})", f"*Figure: `{cmd}` (stage growth).*", ""]
    page = out / "report.md"
    write_text_atomic(page, "\n".join(md) + "\n")
    if tracking_uri:
        import mlflow

        from raykd.tracking import setup_experiment

        with mlflow.start_run(experiment_id=setup_experiment(tracking_uri, "raykd-bench"), run_name="report"):
            mlflow.log_artifacts(str(out), artifact_path="report")
            mlflow.log_metrics({f"asap_science_mean.{k}": v for k, v in means["science"].items()})
    return page
