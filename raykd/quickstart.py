"""`raykd quickstart`: the whole pipeline end to end on ASAP-SAS science set 1, on this machine.

data -> MiniLM teacher (Ray Train + DeepSpeed) -> soft labels -> LSTM and MoE students with no-KD
baselines -> Ray Tune search -> champion in the MLflow registry -> lineage -> Ray Serve endpoint on
127.0.0.1 -> the test responses scored over HTTP and checked against offline scoring.
Every stage reads its config from configs/quickstart/ and writes under --workdir (default runs/quickstart).
"""

from __future__ import annotations

import argparse
import socket
import time
from pathlib import Path

import numpy as np
import pandas as pd

from raykd.config import load_config
from raykd.distill.config import DistillJobConfig
from raykd.errors import ConfigError
from raykd.serve.config import ServeConfig
from raykd.teacher.config import TeacherJobConfig
from raykd.tune.config import TuneJobConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "quickstart"


def _config(name: str, cls: type, overrides: list[str]) -> object:
    path = CONFIGS / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(str(path), "quickstart configs not found (run from a raykd checkout)")
    return load_config(path, cls, overrides)


def _free_port(preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]


def _score_both_ways(work: Path, teacher_dir: str, url: str, champion_dir: str) -> tuple[float, dict]:
    """The teacher's held-back test responses scored over HTTP and by `raykd predict`: the share of identical
    predictions, and the offline metrics."""
    from raykd.data.preparation import reuse
    from raykd.predict.file import predict_file
    from raykd.serve.client import score_file
    from raykd.storage import localize

    test = reuse(localize(teacher_dir), None, "quickstart").frame
    test = test[test["split"] == "test"]
    infile = work / "test_responses.csv"
    pd.DataFrame({"Id": test["id"], "EssaySet": 1, "EssayText": test["text"],
                  "Score1": [int(y) for y in test["y"]]}).to_csv(infile, index=False)
    served = score_file(url, str(infile), str(work / "test_scored_http.csv"))
    metrics = predict_file(champion_dir, str(infile), str(work / "test_scored_offline.csv"))
    offline = pd.read_csv(work / "test_scored_offline.csv", dtype={"id": str, "prediction": str})
    same = (served["prediction"].astype(str).to_numpy() == offline["prediction"].to_numpy()).mean()
    max_diff = np.abs(served.filter(like="p_").to_numpy() - offline.filter(like="p_").to_numpy()).max()
    print(f"HTTP vs offline: {same:.1%} identical predictions, max probability difference {max_diff:.2e}")
    return float(same), metrics


def run_quickstart(args: argparse.Namespace) -> int:
    from raykd.distill.job import run_distill
    from raykd.registry import lineage
    from raykd.serve.launch import run_serve
    from raykd.teacher.job import run_teacher
    from raykd.tune.job import run_tune

    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    tracking = f"sqlite:///{work / 'mlflow.db'}"
    t0 = time.time()

    def stage(title: str) -> None:
        print(f"\n=== {title} ({time.time() - t0:.0f}s) ===", flush=True)

    stage("1/6 teacher: MiniLM on ASAP-SAS set 1 (Ray Train, 2 workers, DeepSpeed ZeRO-2)")
    teacher_cfg = _config("teacher", TeacherJobConfig, [f"output_dir={work / 'teacher'}"])
    teacher = run_teacher(teacher_cfg, tracking_uri=tracking)

    stage("2/6 students: LSTM and MoE, KD vs no-KD")
    distill_cfg = _config("distill", DistillJobConfig, [f"output_dir={work / 'distill'}",
                                                         f"teacher={teacher.output_dir}"])
    run_distill(distill_cfg, tracking_uri=tracking)

    stage("3/6 Ray Tune: student search, champion registered")
    tune_cfg = _config("tune", TuneJobConfig, [f"output_dir={work / 'tune'}", f"teacher={teacher.output_dir}"])
    tuned = run_tune(tune_cfg, tracking_uri=tracking)
    name = tuned.registered.name

    stage(f"4/6 lineage of {name}@champion")
    for step, text in lineage(f"{name}@champion", tracking):
        print(f"{step:>13s}: {text}")

    stage("5/6 Ray Serve: the champion on 127.0.0.1")
    serve_cfg = _config("serve", ServeConfig, [f"tracking_uri={tracking}", f"model=models:/{name}@champion"])
    serve_cfg.port = _free_port(serve_cfg.port)
    url = run_serve(serve_cfg, blocking=False)

    stage("6/6 score the held-back test responses over HTTP and offline")
    same, metrics = _score_both_ways(work, teacher.output_dir, url, tuned.champion_dir)
    from ray import serve

    serve.shutdown()
    params = tuned.winner.parameters
    arch = tuned.winner.params.get("student.arch", tune_cfg.student.arch)
    kd = tuned.winner.params.get("distill.kd_weight", tune_cfg.distill.kd_weight)
    chosen_by = f"{tune_cfg.folds}-fold CV" if tune_cfg.folds > 1 else "validation"
    print(f"\nquickstart finished in {time.time() - t0:.0f}s. Teacher test QWK "
          f"{teacher.metrics.get('test/asap_1/qwk', float('nan')):.3f}; champion ({arch}, kd_weight {kd:g}, "
          f"{chosen_by} QWK {tuned.winner.val_score:.3f}) test QWK {metrics['asap_1']['qwk']:.3f} with {params:,} "
          f"parameters ({params / tuned.teacher_parameters:.2%} of the teacher), {tuned.speedup:.0f}x faster on this "
          "CPU.")
    print(f"MLflow: mlflow ui --backend-store-uri {tracking}")
    return 0 if same == 1.0 else 1
