"""Continuous scores on real data: ASAP-SAS responses scored by the mean of their two raters (0-3 in halves).

    .venv/bin/python -m bench.continuous --workdir runs/bench_continuous [--config bench/continuous.yaml]

The mean of Score1 and Score2 is a continuous score of the kind the Mohler/Texas set has (the mean of two
graders). This writes it as a file in the generic format (id, task, text, score, split: the project's GOLD
train/test split, and the unscored responses as `unlabelled`), then runs the stages a user runs on such a
file: a teacher (`model.kind: encoder`, regression heads, Ray Train + DeepSpeed), its soft labels (mean and sd
per response), LSTM students with and without KD (Gaussian KD, raykd.distill.losses), and one KD student served
on 127.0.0.1 and scored over HTTP and by `raykd predict` on the test responses. Reported per task: Pearson r and
RMSE with bootstrap 95% intervals, QWK of the scores rounded to halves, and the share of identical HTTP and
offline answers. Results go to `--workdir/continuous.json` and `continuous.md`.
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
import yaml

from bench.run_all import distill_stage, teacher_stage
from bench.services import free_port
from raykd import tables
from raykd.data import data_dir
from raykd.io import write_table_atomic, write_text_atomic

CONFIG = Path(__file__).with_name("continuous.yaml")
SCALE = {"low": 0, "high": 3, "step": 0.5}  # the science sets' 0-3 scores, averaged over two raters


def write_mean_scores(asap_dir: Path, path: Path, sets: list[int], rows: int | None = None) -> Path:
    """Per set, the GOLD train and test responses with score = (Score1 + Score2) / 2, task `asap_<set>_mean`,
    and the set's unscored responses (`private_leaderboard.tsv`, split `unlabelled`, no score), in the generic
    format. `rows`: the first N training responses of each set and N / 6 unscored ones only, for tests."""
    unscored = pd.read_csv(asap_dir / "private_leaderboard.tsv", sep="\t")
    parts = []
    for s in sets:
        for split in ("train", "test"):
            if rows is not None and split == "test":
                continue
            source = pd.read_csv(asap_dir / "gold_train_test_split" / f"{s}_GOLD_{split}.csv")
            source = source.head(rows) if rows is not None else source
            parts.append(pd.DataFrame({"id": source["Id"].astype(str), "task": f"asap_{s}_mean",
                                       "text": source["EssayText"], "score": (source["Score1"] + source["Score2"]) / 2,
                                       "split": split}))
        mine = unscored[unscored["EssaySet"] == s]
        mine = mine.head(rows // 6) if rows is not None else mine
        parts.append(pd.DataFrame({"id": mine["Id"].astype(str), "task": f"asap_{s}_mean", "text": mine["EssayText"],
                                   "score": None, "split": "unlabelled"}))
    write_table_atomic(pd.concat(parts, ignore_index=True), path)
    return path


def data_options() -> dict[str, Any]:
    """The generic reader's options for `write_mean_scores`' files."""
    return {"columns": {"label": "score", "task": "task", "split": "split"}, "continuous": dict(SCALE)}


def interval_text(value: float, ci: Any) -> str:
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{value:.3f}"


def serve_and_compare(model_dir: str, test: pd.DataFrame, work: Path) -> float:
    """The share of test responses whose served answer (HTTP, 127.0.0.1) equals `raykd predict`'s."""
    from ray import serve

    from raykd.predict.file import predict_file
    from raykd.serve.client import score_file
    from raykd.serve.config import ServeConfig
    from raykd.serve.launch import run_serve

    infile = work / "test_responses.csv"
    test[["id", "task", "text"]].to_csv(infile, index=False)
    predict_file(model_dir, str(infile), str(work / "test_offline.csv"))
    offline = pd.read_csv(work / "test_offline.csv", dtype={"id": str, "prediction": str})
    url = run_serve(ServeConfig(model=model_dir, port=free_port(), poll_interval_s=0), blocking=False)
    try:
        served = score_file(url, str(infile), str(work / "test_http.csv"))
    finally:
        serve.shutdown()
    same = served["prediction"].astype(str).to_numpy() == offline["prediction"].to_numpy()
    gap = np.abs(served.filter(like="p_").to_numpy() - offline.filter(like="p_").to_numpy()).max()
    print(f"HTTP vs raykd predict: {same.mean():.1%} identical scores, max mean/sd difference {gap:.2e}")
    return float(same.mean())


def report(teacher: Any, distilled: Any, same: float, seconds: float) -> tuple[dict[str, Any], str]:
    rows, out = [], {"tasks": {}, "http_equal_predict": same, "seconds": seconds}
    for task in sorted(teacher.splits["test"].tasks):
        models = {"teacher": teacher.splits["test"]}
        for variant in ("kd", "nokd"):
            s = distilled.student("lstm", variant, task)
            if s is not None:
                models[f"LSTM {variant}"] = s.test
        out["tasks"][task] = {}
        for name, scores in models.items():
            m, ci = scores.tasks[task], scores.metric_intervals.get(task, {})
            out["tasks"][task][name] = {"metrics": m, "intervals": ci}
            rows.append([task, name, interval_text(m["pearson"], ci.get("pearson")),
                         interval_text(m["rmse"], ci.get("rmse")), f"{m['qwk']:.3f}"])
    md = tables.markdown(["task", "model", "Pearson r [95% CI]", "RMSE [95% CI]", "QWK (halves)"], rows)
    md += (f"\n\nHTTP answers equal to `raykd predict`'s: {same:.1%} of the test responses. "
           f"{seconds / 60:.1f} minutes.\n")
    return out, md


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="runs/bench_continuous")
    parser.add_argument("--config", default=str(CONFIG))
    args = parser.parse_args(argv)
    cfg = yaml.safe_load(Path(args.config).read_text())
    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    tracking = f"sqlite:///{work / 'mlflow.db'}"
    t0 = time.time()
    data = write_mean_scores(data_dir() / "asap_sas", work / "mean_scores.csv", cfg["sets"])
    teacher_cfg = {**cfg["teacher"], "data": {**cfg["teacher"].get("data", {}), "path": str(data),
                                              "format": "generic", "options": data_options()}}
    teacher = teacher_stage(teacher_cfg, work / "teacher", tracking)
    distilled = distill_stage(Path(teacher.output_dir), cfg["students"], cfg["distill"], work / "distill", tracking)
    frame = pd.read_csv(data, dtype={"id": str})
    kd = distilled.student("lstm", "kd", frame["task"].iloc[0])
    same = serve_and_compare(kd.model_dir, frame[frame["split"] == "test"], work)
    out, md = report(teacher, distilled, same, time.time() - t0)
    write_text_atomic(work / "continuous.json", json.dumps(out, indent=2, default=float))
    write_text_atomic(work / "continuous.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
