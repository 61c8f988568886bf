"""The teacher stage for `model.kind: stack`: data -> frozen representations -> cross-fitted base learners ->
meta-model -> soft labels, in one MLflow run, into a folder later stages read like any teacher's.

    prepare       read and split the data once; record it (raykd.data.preparation), as every teacher does
    represent     each representation's states of every response, question and reference answer, on Ray Data,
                  read from and added to the cache (raykd.stack.representations)
    base          per task, a Ray task cross-fits every candidate learner (raykd.stack.fit.fit_base)
    select        forward selection over the learners by the mean cross-validated score
    meta          per task: the meta-model, its cut-points or thresholds (chosen on its out-of-fold
                  probabilities), its calibration (fitted on them too)
    soft labels   soft_labels.parquet: cross-fitted for the labelled training responses (train and validation:
                  the meta-model's out-of-fold probabilities), from the refitted stack for the rest;
                  soft_labels_insample.parquet: the refitted stack on every response (students distilled from
                  it are the comparison the quality benchmark reports)
    result        TeacherResult (backbone `stack`, `stack`: what was kept and each learner's score) in
                  teacher_result.json; a nested MLflow run per base learner with its representation's lineage
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raykd.data import ScoringDataset
from raykd.data.dataset import CONTINUOUS
from raykd.errors import ConfigError
from raykd.heads import TaskLayout
from raykd.pipeline import Lineage, StageRun, say
from raykd.stack.config import RepresentationConfig, StackConfig
from raykd.stack.fit import Selection, TaskBase, TaskFit

INSAMPLE = "soft_labels_insample.parquet"


@dataclass
class RepresentationRecord:
    """One representation as the stage used it."""

    backbone: str
    layer: int | None
    key: str  # cache key: backbone, checksum, layer, token limit, precision
    checksum: str
    cached: int  # distinct texts read from the cache
    computed: int  # distinct texts encoded by this run
    seconds: float


@dataclass
class StackSummary:
    """What a stacked teacher kept and why: its representations, every candidate learner's cross-validated
    score alone, the forward selection's steps, and each task's cross-validated score and decoding."""

    representations: list[RepresentationRecord]
    alone: dict[str, float]
    chosen: list[str]
    steps: list[tuple[str, float]]
    cv_scores: dict[str, float]  # per task: the meta-model's out-of-fold primary metric
    cv_score: float
    decoding: dict[str, str]  # per ordinal task: "cut-points" or "argmax"
    folds: int
    meta_c: float = 0.0  # the meta-model's inverse regularisation, chosen by cross-validation
    by_c: dict[str, float] = field(default_factory=dict)  # the cross-validated score of each value tried
    seconds: dict[str, float] = field(default_factory=dict)


def strings_to_encode(frame: pd.DataFrame) -> list[str]:
    """Every distinct text a learner reads: responses, questions and reference answers (one per line)."""
    texts = set(frame["text"])
    texts |= {q for q in frame["question"].dropna() if q}
    texts |= {line.strip() for r in frame["reference"].dropna() for line in str(r).split("\n") if line.strip()}
    return sorted(texts)


def represent_all(cfg: StackConfig, frame: pd.DataFrame, run: StageRun
                  ) -> tuple[dict[str, dict[str, np.ndarray]], list[RepresentationRecord]]:
    """Per representation key, each distinct string's vector; and the record of how they were obtained."""
    from raykd.data.preparation import text_digests
    from raykd.stack.representations import backbone_checksum, default_cache_dir, represent

    strings = strings_to_encode(frame)
    table = pd.DataFrame({"text": strings, "text_sha256": text_digests(pd.Series(strings, dtype=object))})
    cache = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_dir()
    vectors, records = {}, []
    for rep in cfg.representations:
        t0 = time.time()
        got = represent(table, rep, cache, cfg.embed_concurrency, cfg.embed_cpus)
        vectors[got.key] = dict(zip(strings, got.vectors, strict=True))
        records.append(RepresentationRecord(rep.backbone, rep.layer, got.key, backbone_checksum(rep.backbone),
                                            got.cached, got.computed, time.time() - t0))
        run.say(f"representation {got.key}: {got.cached} text(s) from the cache, {got.computed} encoded "
                f"({time.time() - t0:.0f}s)")
    return vectors, records


def base_learners(cfg: StackConfig, ds: ScoringDataset, rows: Any, names: list[str], group_by: str
                  ) -> dict[str, TaskBase]:
    """Every task's candidate learners cross-fitted, one Ray task per task."""
    import ray

    from raykd.stack.fit import fit_base, task_folds

    remote = ray.remote(fit_base).options(num_cpus=cfg.fit_cpus)
    frame = ds.frame
    futures = {}
    for name, spec in ds.tasks.items():
        idx = np.flatnonzero((frame["task"] == name).to_numpy())
        part = frame.iloc[idx]
        pool = np.flatnonzero((part["split"].isin(["train", "validation"]) & part["y"].notna()).to_numpy())
        y = np.asarray(part["y"].iloc[pool].tolist(), dtype=np.int64)
        groups = part[group_by].iloc[pool].fillna("").astype(str).to_numpy()
        folds = task_folds(spec, y, groups, cfg.folds, cfg.seed)
        futures[name] = remote.remote(spec, rows.take(idx), y, pool, folds, names, cfg)
    return dict(zip(futures, ray.get(list(futures.values())), strict=True))


def soft_tables(ds: ScoringDataset, layout: TaskLayout, bases: dict[str, TaskBase], fits: dict[str, TaskFit]
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The cross-fitted and the in-sample soft-label tables (`id, task, split, text_sha256, p_<label>`)."""
    from raykd.scoring import prob_columns, prob_matrix

    frame = ds.frame
    crossed: list[np.ndarray] = [None] * len(frame)  # type: ignore[list-item]
    insample: list[np.ndarray] = [None] * len(frame)  # type: ignore[list-item]
    for name, fit in fits.items():
        idx = np.flatnonzero((frame["task"] == name).to_numpy())
        final = fit.final.copy()
        crossed_task = final.copy()
        crossed_task[bases[name].pool] = fit.oof
        for j, i in enumerate(idx):
            crossed[i], insample[i] = crossed_task[j], final[j]
    ids = pd.DataFrame({"id": frame["id"].astype(str).to_numpy(dtype=object), "task": frame["task"].to_numpy(),
                        "split": frame["split"].to_numpy(), "text_sha256": frame["text_sha256"].to_numpy()})
    tables = []
    for probs in (crossed, insample):
        table = ids.copy()
        matrix = prob_matrix(layout, frame["task"].tolist(), probs)
        for j, c in enumerate(prob_columns(layout)):
            table[c] = matrix[:, j]
        tables.append(table)
    return tables[0], tables[1]


def task_prompts(ds: ScoringDataset) -> dict[str, dict[str, str | None]]:
    """Per task whose labelled responses all answered one question with one reference (an ASAP-SAS set read with
    its prompt), that question and reference: the scorer gives them to responses that come without."""
    out = {}
    frame = ds.frame[ds.frame["y"].notna()]
    for task, part in frame.groupby("task"):
        pairs = {(q if isinstance(q, str) and q else None, r if isinstance(r, str) and r else None)
                 for q, r in zip(part["question"], part["reference"], strict=True)}
        if len(pairs) == 1 and next(iter(pairs)) != (None, None):
            question, reference = next(iter(pairs))
            out[str(task)] = {"question": question, "reference": reference}
    return out


def decisions(ds: ScoringDataset, bases: dict[str, TaskBase], fits: dict[str, TaskFit]
              ) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Per task, the thresholds the stack decides by (fitted on its out-of-fold probabilities) and, for
    ordinal tasks, which decoding cross-validation chose."""
    from raykd.data.dataset import MULTICLASS
    from raykd.evaluation import tuned_decisions

    thresholds, decoding = {}, {}
    for name, fit in fits.items():
        spec = ds.tasks[name]
        fitted, _ = tuned_decisions(fit.oof, bases[name].y, spec)
        if fitted is not None:
            thresholds[name] = fitted
        if spec.kind == MULTICLASS and spec.ordinal:
            decoding[name] = "cut-points" if fitted is not None else "argmax"
    return thresholds, decoding


def log_learners(run: StageRun, lineage: Lineage, selection: Selection, bases: dict[str, TaskBase],
                 records: list[RepresentationRecord]) -> None:
    """One nested MLflow run per candidate learner: its representation's lineage, its score alone, whether
    it was kept, and its fitting time."""
    import mlflow

    by_key = {r.key: r for r in records}
    for name, score in selection.alone.items():
        key = name.partition(":")[2]
        rep = by_key.get(key)
        tags = {"raykd.learner": name, "raykd.kept": str(name in selection.chosen).lower()}
        if rep:
            tags.update({"raykd.representation": rep.key, "raykd.backbone": rep.backbone,
                         "raykd.backbone_checksum": rep.checksum})
        with run.child(f"learner-{name}", lineage, {"learner": name, "layer": rep.layer if rep else None},
                       tags=tags, stage="stack-learner"):
            mlflow.log_metrics({"cv_score_alone": score,
                                "fit_seconds": float(sum(b.seconds.get(name, 0.0) for b in bases.values()))})


def fit_stack(cfg: Any, ds: ScoringDataset, layout: TaskLayout, run: StageRun, lineage: Lineage
              ) -> tuple[Path, StackSummary, dict[str, float]]:
    """Represent, cross-fit, select, fit the meta-models, and save the model folder and both soft-label
    tables; returns the model folder, the summary and the stage's timings."""
    from raykd.confidence import fit_calibration
    from raykd.data.preparation import text_digests
    from raykd.stack.fit import fit_meta, select
    from raykd.stack.learners import build_rows, candidates
    from raykd.stack.model import save_stack
    from raykd.teacher.export import write_soft_labels

    scfg: StackConfig = cfg.stack
    continuous = [name for name, spec in ds.tasks.items() if spec.kind == CONTINUOUS]
    if continuous:  # its learners and meta-model are classifiers
        raise ConfigError("model.kind", f"the stack scores class tasks; task {continuous[0]!r} is continuous: "
                                        "train it with model.kind: model")
    seconds: dict[str, float] = {}
    t0 = time.time()
    frame = ds.frame
    if "text_sha256" not in frame:
        frame["text_sha256"] = text_digests(frame["text"])
    vectors, records = represent_all(scfg, frame, run)
    seconds["represent"] = time.time() - t0
    keys = [r.key for r in records]
    rows = build_rows(frame["text"].tolist(), frame["question"].tolist(), frame["reference"].tolist(), keys,
                      lambda key, strings: np.stack([vectors[key][s] for s in strings]))
    names = candidates(scfg, keys)
    t0 = time.time()
    bases = base_learners(scfg, ds, rows, names, "question" if scfg.group_folds_by == "question" else "text_sha256")
    seconds["base"] = time.time() - t0
    t0 = time.time()
    selection = select(list(bases.values()), ds.tasks, names, scfg)
    run.say("kept " + ", ".join(f"{n} ({s:.4f})" for n, s in selection.steps) + f" of {len(names)} learner(s)")
    run.say(f"meta-model C {selection.meta_c:g} (cross-validated {selection.by_c})")
    fits = {name: fit_meta(ds.tasks[name], base, selection.chosen, selection.meta_c) for name, base in bases.items()}
    thresholds, decoding = decisions(ds, bases, fits)
    seconds["select_meta"] = time.time() - t0
    crossed, insample = soft_tables(ds, layout, bases, fits)
    meta = {"tasks": layout.to_list(), "teacher_run_id": run.run_id, "data_digest": lineage.data_digest}
    splits = cfg.export.splits
    write_soft_labels(crossed[crossed["split"].isin(splits)].reset_index(drop=True), run.out / "soft_labels.parquet",
                      {**meta, "soft_labels": "cross-fitted"})
    write_soft_labels(insample[insample["split"].isin(splits)].reset_index(drop=True), run.out / INSAMPLE,
                      {**meta, "soft_labels": "in-sample"})
    stacks = {name: fit.stack for name, fit in fits.items()}
    backbones = sum(backbone_parameters(r) for r in scfg.representations)
    fitted = sum(s.coefficients for s in stacks.values())
    parameters = {"backbones": backbones, "fitted": fitted, "total": backbones + fitted, "trainable": fitted}
    model_dir = save_stack(run.out / "model", layout, stacks, scfg.representations, thresholds, parameters,
                           task_prompts(ds), extra={"selection": selection.chosen})
    oof_probs = [p for name in fits for p in fits[name].oof]
    oof_tasks = [name for name in fits for _ in range(len(fits[name].oof))]
    oof_gold = [y for name in fits for y in bases[name].y.tolist()]
    fit_calibration(layout.tasks, oof_probs, oof_tasks, oof_gold, "out-of-fold", thresholds).save(model_dir)
    cv_scores = {name: fit.cv_score for name, fit in fits.items()}
    summary = StackSummary(records, selection.alone, selection.chosen, selection.steps, cv_scores,
                           float(np.mean(list(cv_scores.values()))), decoding, scfg.folds, selection.meta_c,
                           selection.by_c, seconds)
    log_learners(run, lineage, selection, bases, records)
    return model_dir, summary, {f"stack_{k}_seconds": v for k, v in seconds.items()}


def backbone_parameters(rep: RepresentationConfig) -> int:
    """The backbone's parameters as the stack runs it (layers past the pooled one left out), counted on the meta
    device: no weights are read."""
    import torch
    from transformers import AutoConfig, AutoModel

    from raykd.stack.representations import cut_layers
    from raykd.teacher.model import resolve_model_path

    with torch.device("meta"):
        model = AutoModel.from_config(AutoConfig.from_pretrained(resolve_model_path(rep.backbone)))
    cut_layers(model, rep.layer)
    return sum(p.numel() for p in model.parameters())


def stack_note(summary: StackSummary) -> None:
    for name, score in sorted(summary.alone.items(), key=lambda kv: -kv[1]):
        say("teacher", f"  learner {name:48s} cv {score:.4f}{'  kept' if name in summary.chosen else ''}")
    say("teacher", f"stack cv score {summary.cv_score:.4f}; decoding {summary.decoding}")
