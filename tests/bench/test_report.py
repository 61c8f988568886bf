"""The report generator on a small results file: tables, plots, and plain words where a target is missed."""

import json
from dataclasses import asdict

from bench.report import build_report
from raykd.distill.job import DistillResult, StudentResult, TeacherReference
from raykd.evaluation import TaskScores


def scores(task_metrics):
    return TaskScores(task_metrics, {}, 0.0)


def student(family, group, variant, tasks, metrics, params=30_000):
    return StudentResult(family=family, group=group, variant=variant, arch=family, tasks=tasks, kd_weight=0.5,
                         parameters=params, bytes=1, validation=scores({}), test=scores(metrics), best_epoch=1,
                         epochs_run=1, fit_seconds=1.0, responses_per_s=1.0, speedup=50.0,
                         param_ratio=params / 22_700_000, model_dir="x", run_id="r")


def distill(teacher_test, students):
    reference = TeacherReference(parameters=22_700_000, responses_per_s=1.0, test=scores(teacher_test), run_id="t")
    return asdict(DistillResult(output_dir="d", run_id="d", teacher=reference, students=students, targets=[]))


def results():
    asap_tasks = ["asap_1", "asap_2"]
    t = {"asap_1": {"qwk": 0.80}, "asap_2": {"qwk": 0.70}}
    students = []
    for var, delta in (("kd", -0.01), ("nokd", -0.05)):
        students.append(student("moe", "moe", var, asap_tasks, {k: {"qwk": v["qwk"] + delta - 0.04}
                                                                 for k, v in t.items()}))
        for task in asap_tasks:
            students.append(student("lstm", f"lstm-{task}", var, [task], {task: {"qwk": t[task]["qwk"] + delta}}))
    sem = {"scientsbank_2way": {"accuracy": 0.7, "macro_f1": 0.68}}
    sem_students = [student("lstm", "lstm-scientsbank_2way", "kd", ["scientsbank_2way"],
                            {"scientsbank_2way": {"accuracy": 0.66, "macro_f1": 0.6}})]
    speed = {"teacher": {"parameters": 22_700_000, "bytes": 90_000_000, "batch1_per_s": 20.0, "batch64_per_s": 50.0},
             "moe_kd": {"parameters": 150_000, "bytes": 700_000, "batch1_per_s": 900.0, "batch64_per_s": 400.0,
                        "speedup_batch1": 45.0, "speedup_batch64": 8.0, "param_ratio": 150_000 / 22_700_000},
             "lstm_kd": {"parameters": 30_000, "bytes": 150_000, "batch1_per_s": 1000.0, "batch64_per_s": 5000.0,
                         "speedup_batch1": 50.0, "speedup_batch64": 100.0, "param_ratio": 30_000 / 22_700_000}}
    return {"asap_distill": distill(t, students),
            "asap_tfidf": {"asap_1": {"qwk": 0.75}, "asap_2": {"qwk": 0.6}},
            "semeval_distill": distill(sem, sem_students), "semeval_tfidf": {},
            "speed": speed, "growth": {"1000": {"train_seconds_per_epoch": 1.0, "inference_per_s": 5000.0,
                                               "parameters": 30000}},
            "stage_seconds": {"speed": 95.0, "growth": 40.0, "beetle_2way": None}}


def test_report_tables_plots_and_missed_targets(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results()))
    page = build_report(path, tmp_path / "report")
    text = page.read_text()
    assert "| **1** (science) | 0.800 | 0.790 | 0.750 | 0.750 | 0.710 | 0.750 |" in text
    assert "stages took 2 minutes in all" in text
    # The MoE student is 0.05 below the teacher and only 8x faster at batch 64: both said plainly.
    moe = next(line for line in text.splitlines() if line.startswith("- MoE KD student"))
    assert "gap +0.050: **MISSED** the 0.03 target" in moe and "8.0x faster at worst (**MISSED** >= 10x)" in moe
    lstm = next(line for line in text.splitlines() if line.startswith("- LSTM KD student"))
    assert "met the 0.03 target" in lstm and "757x fewer parameters (met >= 100x)" in lstm
    assert "one response per request" not in text  # no serve_load stage in these results
    # SemEval: the LSTM KD student is 0.08 macro-F1 below the teacher; no TF-IDF row, so no weak-teacher flag.
    assert "- SemEval scientsbank_2way macro-F1: teacher 0.680; LSTM KD 0.600 (**MISSED**)." in text
    for png in ("qwk_per_set.png", "accuracy_vs_params.png", "throughput_ratios.png", "growth.png"):
        assert (tmp_path / "report" / png).stat().st_size > 5_000
        assert f"({png})" in text
    assert text.count("*Figure: `") >= 3


def test_report_names_the_machine_command_gpu_rows_and_llm_throughput(tmp_path):
    res = results()
    res["machine"] = {"cpus": 16, "gpu": "NVIDIA H100 80GB HBM3", "gpus": 1, "torch": "2.11.0"}
    res["command"] = ".venv/bin/python -m bench.run_all --config bench/config.gpu.yaml --workdir runs/bench-gpu"
    res["config"] = {"asap_teacher": {"scaling": {"use_gpu": True}, "deepspeed": {"zero_stage": 2}}}
    res["speed"]["teacher_gpu"] = {"parameters": 22_700_000, "bytes": 90_000_000, "device": "cuda",
                                   "batch1_per_s": 150.0, "batch64_per_s": 4000.0, "speedup_batch1": 7.5,
                                   "speedup_batch64": 80.0, "param_ratio": 1.0}
    res["train_throughput"] = {"1": {"samples_per_s": 62.0, "steady_samples_per_s": 77.2}}
    res["serve_load"] = serve_load()
    res["llm_throughput"] = {"parameters": {"total": 20_367_497_280, "trainable": 31_862_016},
                             "train_samples_per_s": 7.35, "train_steady_samples_per_s": 7.53,
                             "gpu_max_memory_gb": 45.96, "fit_seconds": 97.8, "batch_size": 8, "zero_stage": 3,
                             "model": {"tiny": "gpt_oss", "tiny_layers": 24, "tiny_hidden": 2880, "max_length": 128,
                                       "tiny_overrides": {"num_local_experts": 32}},
                             "lora": {"r": 64, "target_modules": ["q_proj", "v_proj"]}}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(res))
    text = build_report(path, tmp_path / "report").read_text()
    assert "config.gpu.yaml" in text and "16 CPU cores, 1 x NVIDIA H100 80GB HBM3" in text
    assert "| teacher_gpu | cuda | 150.000 | 4,000 |" in text
    size_rows = text.split("## Size")[1].split("## Speed")[0]
    assert "teacher_gpu" not in size_rows  # the same model as the CPU teacher
    assert "ZeRO-2, GPU)" in text and "| 1 | 62.000 | 77.200 |" in text
    assert "20,367,497,280 parameters, 31,862,016 trainable" in text and "num_local_experts=32" in text
    assert "| 7.350 | 7.530 | 45.960 | 97.800 |" in text
    # Serving targets are judged from the load run: met and missed both stated.
    assert "moe_kd, one response per request: 320 requests/s at 32 connections, p99 80 ms (met" in text
    assert "throughput from 1 to 64 connections holds" in text
    assert "moe_kd, 64 responses per request: 7,000 responses/s at 64 connections (**MISSED** >= 10,000)" in text
    assert "0.50% failed, full throughput after 12 s (met" in text
    assert "15,000/s, peak 1.70 GiB (**MISSED**" in text
    assert "moe_kd / teacher responses/s at equal connections: 1 conn. 1/req 10.0x" in text
    assert (tmp_path / "report" / "serve_load.png").stat().st_size > 10_000


def serve_load() -> dict:
    """A small load report as bench/serve_load.py saves it."""
    from dataclasses import asdict

    from bench.load_report import FaultRun, LoadPoint, LoadReport, StreamPredict

    def pt(model, shape, c, rps, p99):
        n = 1 if shape == "single" else 64
        return LoadPoint(model=model, shape=shape, connections=c, seconds=10.0, requests_per_s=rps,
                         responses_per_s=rps * n, p50_ms=p99 / 2, p99_ms=p99, ok=int(rps * 10), overload_503=0,
                         failed=0, timeouts=0, statuses={"200": int(rps * 10)})

    sweep = [pt("moe_kd", "single", c, r, p) for c, r, p in ((1, 100, 10), (32, 320, 80), (64, 330, 150))]
    sweep += [pt("moe_kd", "batch64", c, r, p) for c, r, p in ((1, 50, 30), (64, 7000 / 64, 900))]
    sweep += [pt("teacher", "single", c, r, p) for c, r, p in ((1, 10, 100), (32, 30, 900), (64, 30, 2000))]
    sweep += [pt("teacher", "batch64", c, 0.3, 3000) for c in (1, 64)]
    fault = FaultRun(connections=64, seconds=40, killed_at_s=10, requests=10_000, failed=50, failed_fraction=0.005,
                     baseline_per_s=300, recovery_s=12.0, timeline=[{"second": 0, "ok": 300, "failed": 0}])
    report = LoadReport(machine={"cpus": 2}, wrk_timeout_s=10, serve_config={}, sweep=sweep, fault=fault,
                        predict=[StreamPredict(responses=1_000_000, seconds=66.7, responses_per_s=15_000,
                                               peak_memory_gb=1.7, model="moe_kd")])
    return asdict(report)


def test_report_knowledge_tracing_section(tmp_path):
    from raykd.kt.results import (
        CalibrationRound,
        CohortComparison,
        KTDistillResult,
        KTSetting,
        KTSimulateResult,
        KTStudentResult,
        KTTeacherMember,
        KTTeacherResult,
        Speed,
    )

    def kt_student(lam, auc):
        return KTStudentResult(64, lam, 1.0, auc + 0.01, auc, (auc - 0.01, auc + 0.01), 5, 40_000)

    champion, twin = kt_student(1.0, 0.812), kt_student(0.0, 0.806)
    res = results()
    res["kt"] = {
        "teacher": asdict(KTTeacherResult("t", "sqlite://", "d", "minilm", 110, 2_000_000, 0.82, 0.815,
                                          (0.81, 0.82), 400.0, "s", members=[
                                              KTTeacherMember("attention", 0, 1_800_000, 8, 10, 0.81, 0.811, 300.0),
                                              KTTeacherMember("attention", 1, 1_800_000, 9, 10, 0.812, 0.810, 300.0),
                                              KTTeacherMember("dkt", 0, 200_000, 7, 10, 0.813, 0.812, 30.0,
                                                              width=200),
                                              # trained and left out by the selection: not part of the teacher
                                              KTTeacherMember("dkt", 1, 50_000, 7, 10, 0.80, 0.80, 20.0, width=64,
                                                              selected=False)])),
        "distill": asdict(KTDistillResult("r", "t", 0.815, 2_000_000, champion, twin, [twin, champion],
                                          Speed(100.0, 2_500.0, 20.0, 400.0), settings=[
                                              KTSetting(64, 1.0, 1.0, 2, 0.8221, 0.8127, 0.8126, 0.8128)],
                                          calibration=[CalibrationRound(0.93, 0.658, 0.653),
                                                       CalibrationRound(0.957, 0.658, 0.663)],
                                          simulator_test_auc=0.8136)),
        "simulation": asdict(KTSimulateResult(0, CohortComparison(1230, 101_419, 0.659, 0.662, 0.95, 100,
                                                                  [0.6, 0.7], [0.61, 0.69], {}))),
        "plot": str(tmp_path / "missing.png"), "config": "configs/kt_assist2009.yaml"}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(res))
    text = build_report(path, tmp_path / "report").read_text()
    section = text.split("## Knowledge tracing")[1]
    assert "| teacher member: dkt 64, seed 1 (left out on validation) | 0.8000 |" in section
    assert ("| teacher (mean of 2 x AttentionKT + 1 x DKT 200) | 0.8200 | 0.8150 [0.8100, 0.8200] | 2,000,000 |"
            in section)
    assert "| teacher member: dkt 200, seed 0 | 0.8130 | 0.8120 | 200,000 |" in section
    assert "| champion DKT (hidden 64, lambda 1, T 1) | 0.8220 | 0.8120 [0.8020, 0.8220] | 40,000 |" in section
    assert "50x fewer parameters, 25.0x the sequences/s in batches of 64, 20.0x one sequence at a time" in section
    assert "| hidden 64, lambda 1, T 1 | 2 | 0.8221 | 0.8127 (0.8126 to 0.8128) |" in section
    assert "correct rate 0.662 simulated against 0.659 real" in section and "Pearson r = 0.950" in section
    assert "after 2 rounds of per-skill bias calibration" in section and "0.930 -> 0.957" in section
    assert "its test AUC is 0.8136" in section
