"""The knowledge-tracing stages, on raykd's stage skeleton (raykd.pipeline):

    kt-teacher   data (one preparation, kt_prepared.json) -> language-model knowledge (knowledge/) ->
                 AttentionKT on Ray Train (model/) -> soft labels per step (soft_labels.npz)
    kt-distill   DKT students on Ray Tune (KD grid + no-KD twins) -> champion/ (registered when
                 `register_as` is set), test AUC with intervals, speed against the teacher
    kt-simulate  the champion plays the test cohort -> simulation.md, simulation.png

Folders: `<output_dir>/teacher`, `<output_dir>/distill`; each stage's typed result is a JSON file in its folder.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

from raykd import storage
from raykd.errors import DataError
from raykd.io import atomic_path, file_digest, write_text_atomic
from raykd.kt import preparation as kt_prepared
from raykd.kt.config import KTJobConfig
from raykd.kt.data import KTDataset, Sequence
from raykd.kt.models import KTIndex
from raykd.kt.results import (
    KTDistillResult,
    KTSimulateResult,
    KTStudentResult,
    KTTeacherMember,
    KTTeacherResult,
    Speed,
)
from raykd.pipeline import Lineage, StageRun, load_result, resolve_tracking_uri
from raykd.tracking import git_commit

SOFT_LABELS = "soft_labels.npz"


def teacher_dir(cfg: KTJobConfig) -> str:
    """Where the kt-teacher stage keeps its outputs: a folder or an object store (raykd.storage)."""
    return storage.join(cfg.output_dir, "teacher")


def distill_dir(cfg: KTJobConfig) -> str:
    return storage.join(cfg.output_dir, "distill")


def _save_soft_labels(path: Path, parts: dict[str, tuple[list[np.ndarray], list[np.ndarray]]]) -> None:
    arrays = {}
    for split, (nxt, mas) in parts.items():
        arrays[f"{split}_offsets"] = np.cumsum([0] + [len(x) for x in nxt])
        arrays[f"{split}_next"] = np.concatenate(nxt).astype(np.float32)
        if mas and mas[0].size:
            arrays[f"{split}_mastery"] = np.concatenate(mas).astype(np.float16)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def load_soft_labels(path: Path, split: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per sequence of `split` (in kt_prepared's window order): next-step and mastery probabilities."""
    from itertools import pairwise

    z = np.load(path)
    bounds = list(pairwise(z[f"{split}_offsets"].tolist()))
    flat_next = z[f"{split}_next"]
    flat_mastery = z.get(f"{split}_mastery")
    return ([flat_next[a:b] for a, b in bounds],
            [flat_mastery[a:b] for a, b in bounds] if flat_mastery is not None else [])


def _fit_members(cfg: KTJobConfig, parts: dict, prep: kt_prepared.KTPrepared, knowledge_arrays: dict,
                 out: Path, run: StageRun) -> tuple[list[KTTeacherMember], list]:
    """Each teacher member trained on Ray Train in turn: its record, and (model config, best weights) to save."""
    import torch

    from raykd.kt import teacher
    from raykd.kt.metrics import auc
    from raykd.kt.models import predict
    from raykd.training import count_parameters

    members, saved, val_probs = [], [], []
    specs = teacher.member_specs(cfg.teacher, len(prep.skill_ids), prep.max_length, prep.index.num_items)
    for i, (model_cfg, hp) in enumerate(specs):
        run.say(f"member {i + 1}/{len(specs)}: {_member_name(model_cfg)}, seed {hp['seed']} (Ray Train, "
                f"{cfg.scaling.num_workers} workers)")
        t0 = time.time()
        ckpt, state = teacher.fit(parts["train"], parts["validation"], prep.index, knowledge_arrays, model_cfg,
                                  hp, cfg.scaling, storage.join(run.location, "ray_results"),
                                  f"{run.run.info.run_name}-member{i}")  # a new stage run never resumes an old one
        best = torch.load(ckpt / teacher.BEST, weights_only=True)
        net = teacher.build(model_cfg, knowledge_arrays)
        net.load_state_dict(best)
        member = KTTeacherMember(model_cfg["family"], hp["seed"], count_parameters(net)[0], state.best_epoch + 1,
                                 state.epoch + 1, state.best_score,
                                 auc(parts["test"], predict(net, parts["test"], prep.index)[0]),
                                 time.time() - t0, state.history, width=_member_width(model_cfg))
        members.append(member)
        saved.append((model_cfg, best))
        val_probs.append(predict(net, parts["validation"], prep.index)[0])
        run.log_metrics({f"member{i}.val_auc": member.val_auc, f"member{i}.test_auc": member.test_auc})
        run.say(f"member {i + 1}/{len(specs)} done: {member.parameters:,} parameters, val AUC {member.val_auc:.4f}, "
                f"test AUC {member.test_auc:.4f}, {member.train_seconds:.0f}s")
    chosen = (list(range(len(members))) if cfg.teacher.select == "all" else
              teacher.select_members(val_probs, lambda probs: auc(parts["validation"], probs)))
    for i, m in enumerate(members):
        m.selected = i in chosen
    run.say(f"teacher members chosen on validation ({cfg.teacher.select}): "
            + ", ".join(f"{i + 1} ({_member_name(specs[i][0])})" for i in chosen))
    return members, [saved[i] for i in chosen]


def _member_width(model_cfg: dict) -> int:
    return int(model_cfg["d_model"] if model_cfg["family"] == "attention" else model_cfg["hidden"])


def _member_name(model_cfg: dict) -> str:
    if model_cfg["family"] == "attention":
        return f"AttentionKT d {model_cfg['d_model']}, {model_cfg['layers']} layers"
    return f"DKT hidden {model_cfg['hidden']}"


def run_kt_teacher(cfg: KTJobConfig, tracking_uri: str | None = None) -> KTTeacherResult:
    from raykd.kt import teacher
    from raykd.kt.knowledge import build_knowledge
    from raykd.kt.metrics import auc, auc_interval
    from raykd.kt.models import predict
    from raykd.runtime import ensure_ray
    from raykd.training import count_parameters

    location = teacher_dir(cfg)
    ds, prep = kt_prepared.prepare(cfg.data)
    parts = prep.windows(ds)
    uri = resolve_tracking_uri(tracking_uri, cfg.tracking)
    lineage = Lineage(data_digest=prep.digest, git_commit=git_commit())
    with StageRun.open("kt-teacher", cfg.name, location, cfg.tracking, uri, lineage,
                       params={"data": dataclasses.asdict(cfg.data), "knowledge": dataclasses.asdict(cfg.knowledge),
                               "teacher": dataclasses.asdict(cfg.teacher), "scaling": dataclasses.asdict(cfg.scaling)},
                       tags={"raykd.family": "knowledge-tracing"}) as run:
        out = run.out
        kt_prepared.record(prep, out)
        items = f", {prep.index.num_items} items ({len(ds.item_names)} named)" if prep.index.num_items else ""
        run.say(f"data {ds.name}: {len(parts['train'])} train / {len(parts['validation'])} validation / "
                f"{len(parts['test'])} test windows of <= {prep.max_length}; {len(prep.skill_ids)} skills "
                f"({len(ds.skill_names)} named){items}; digest {prep.digest[:16]}")
        knowledge = build_knowledge(prep.skill_ids, ds.skill_names, as_skills(ds, prep.train_learners),
                                    cfg.knowledge.model, cfg.knowledge.neighbours, cfg.knowledge.relations,
                                    cfg.knowledge.relation_model)
        knowledge.save(out / "knowledge")
        run.log_artifact(out / "knowledge" / "knowledge.npz", "knowledge")
        run.say(f"skill knowledge from {knowledge.source}: embeddings {knowledge.embeddings.shape}, graph with "
                f"{int((knowledge.graph > 0).sum())} edges")
        ensure_ray(include_dashboard=False)
        members, saved = _fit_members(cfg, parts, prep, {"embeddings": knowledge.embeddings,
                                                          "graph": knowledge.graph}, out, run)
        teacher.save_model(out / "model", saved, {"skill_ids": prep.skill_ids, "knowledge_source": knowledge.source,
                                                  "item_skill": prep.item_skill})
        model, _ = teacher.load_model(out / "model")
        soft = {"train": predict(model, parts["train"], prep.index, mastery=True),
                "validation": predict(model, parts["validation"], prep.index, mastery=True),
                "test": predict(model, parts["test"], prep.index)}
        _save_soft_labels(out / SOFT_LABELS, soft)
        run.log_artifact(out / SOFT_LABELS)
        test_auc = auc(parts["test"], soft["test"][0])
        result = KTTeacherResult(
            run_id=run.run_id, tracking_uri=uri, data_digest=prep.digest, knowledge_source=knowledge.source,
            knowledge_digest=file_digest(out / "knowledge" / "knowledge.npz"),
            skills=len(prep.skill_ids), parameters=count_parameters(model)[0],
            val_auc=auc(parts["validation"], soft["validation"][0]), test_auc=test_auc,
            test_auc_interval=auc_interval(parts["test"], soft["test"][0]),
            train_seconds=sum(m.train_seconds for m in members), soft_labels_digest=file_digest(out / SOFT_LABELS),
            members=members)
        run.log_metrics({"val_auc": result.val_auc, "test_auc": test_auc, "parameters": result.parameters,
                         "train_seconds": result.train_seconds})
        run.save(result, "kt_teacher_result.json")
        run.say(f"teacher ({result.description}): {result.parameters:,} parameters, val AUC {result.val_auc:.4f}, "
                f"test AUC {test_auc:.4f} [{result.test_auc_interval[0]:.4f}, {result.test_auc_interval[1]:.4f}], "
                f"{result.train_seconds:.0f}s")
    return result


def as_skills(ds: KTDataset, learners: list[int]) -> list[Sequence]:
    """The training learners' sequences with each item replaced by its skill (on skill-level data: as they are)."""
    if not ds.item_skill:
        return [ds.train[i] for i in learners]
    return [Sequence(np.asarray([ds.item_skill[int(q)] for q in ds.train[i].skills]), ds.train[i].correct)
            for i in learners]


def measure_speed(teacher_model: object, student_model: object, seqs: list, index: KTIndex,
                  singles: int = 100) -> Speed:
    """Sequences/s of both models on the same windows, one thread: batched (64) and one sequence at a time."""
    import torch

    from raykd.kt.models import predict

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rates = []
        for model in (teacher_model, student_model):
            t0 = time.perf_counter()
            predict(model, seqs, index, batch_size=64)
            batched = len(seqs) / (time.perf_counter() - t0)
            t0 = time.perf_counter()
            for s in seqs[:singles]:
                predict(model, [s], index, batch_size=1)
            rates.append((batched, min(singles, len(seqs)) / (time.perf_counter() - t0)))
    finally:
        torch.set_num_threads(threads)
    return Speed(rates[0][0], rates[1][0], rates[0][1], rates[1][1])


def _student_results(trials: list, cfg: KTJobConfig, parts: dict, prep: kt_prepared.KTPrepared, run: StageRun
                     ) -> tuple[list[KTStudentResult], list]:
    """Each trial's student loaded from its checkpoint and scored on test; (results, (model, its config))."""
    import torch

    from raykd.kt.metrics import auc, auc_interval
    from raykd.kt.models import predict
    from raykd.students.architectures import build_student
    from raykd.training import count_parameters

    results, models = [], []
    for trial in trials:
        hp = dataclasses.replace(cfg.student, hidden=trial.hidden, kd_weight=trial.kd_weight,
                                 temperature=trial.temperature, seed=trial.seed)
        model = build_student("dkt", {**dataclasses.asdict(hp), "num_skills": len(prep.skill_ids),
                                      "num_items": prep.index.num_items})
        model.load_state_dict(torch.load(trial.weights, weights_only=True))
        model.eval()
        probs = predict(model, parts["test"], prep.index)[0]
        results.append(KTStudentResult(trial.hidden, trial.kd_weight, trial.temperature, trial.val_auc,
                                       auc(parts["test"], probs), auc_interval(parts["test"], probs),
                                       trial.best_epoch, count_parameters(model)[0], trial.seed))
        models.append((model, hp))
        run.say(f"student hidden {trial.hidden} lambda {trial.kd_weight} T {trial.temperature} seed {trial.seed}: "
                f"val AUC {trial.val_auc:.4f}, test AUC {results[-1].test_auc:.4f}")
    return results, models


def _teacher_soft_labels(tdir: Path, t_result: KTTeacherResult) -> tuple[Any, list[np.ndarray]]:
    """The teacher's soft labels, checked against the digest its stage recorded: (train labels, test next-step)."""
    from raykd.kt import student as kt_student

    if file_digest(tdir / SOFT_LABELS) != t_result.soft_labels_digest:
        raise DataError(tdir / SOFT_LABELS, "changed since the teacher stage recorded it (sha256 differs from "
                                            "kt_teacher_result.json); rerun kt-teacher")
    nxt, mas = load_soft_labels(tdir / SOFT_LABELS, "train")
    return kt_student.SoftLabels(nxt, mas), load_soft_labels(tdir / SOFT_LABELS, "test")[0]


def run_kt_distill(cfg: KTJobConfig, tracking_uri: str | None = None) -> KTDistillResult:
    from raykd.kt import student as kt_student
    from raykd.kt import teacher
    from raykd.kt.metrics import auc
    from raykd.kt.models import predict
    from raykd.runtime import ensure_ray

    tdir = storage.localize(teacher_dir(cfg))
    t_result = load_result(KTTeacherResult, tdir / "kt_teacher_result.json")
    ds, prep = kt_prepared.reuse(tdir, cfg.data)
    parts = prep.windows(ds)
    soft, test_teacher = _teacher_soft_labels(tdir, t_result)
    uri = resolve_tracking_uri(tracking_uri, cfg.tracking, t_result.tracking_uri)
    lineage = Lineage(data_digest=prep.digest, git_commit=git_commit(), teacher_run_id=t_result.run_id,
                      soft_labels_digest=t_result.soft_labels_digest,
                      soft_labels_artifact=f"runs:/{t_result.run_id}/{SOFT_LABELS}")
    with StageRun.open("kt-distill", cfg.name, distill_dir(cfg), cfg.tracking, uri, lineage,
                       params={"student": dataclasses.asdict(cfg.student), "search": dataclasses.asdict(cfg.search)},
                       tags={"raykd.family": "knowledge-tracing"}) as run:
        out = run.out
        ensure_ray(include_dashboard=False)
        trials = kt_student.search(parts["train"], parts["validation"], prep.index,
                                   soft, cfg.student, cfg.search, storage.join(run.location, "ray_results"),
                                   run.run.info.run_name)
        results, models = _student_results(trials, cfg, parts, prep, run)
        settings, best, twin_at = kt_student.choose(results)
        champion, (champ_model, champ_hp), twin = results[best], models[best], results[twin_at]
        calibration = _save_calibrated(cfg, ds, prep, t_result, champ_model, champ_hp, out, run)
        simulator_auc = auc(parts["test"], predict(champ_model, parts["test"], prep.index)[0])
        teacher_model, _ = teacher.load_model(tdir / "model")
        speed = measure_speed(teacher_model, champ_model, parts["test"], prep.index)
        result = KTDistillResult(run.run_id, t_result.run_id, auc(parts["test"], test_teacher),
                                 t_result.parameters, champion, twin, results, speed, settings=settings,
                                 calibration=calibration, simulator_test_auc=simulator_auc,
                                 teacher_val_auc=t_result.val_auc,
                                 best_no_kd_val_auc=max(r.val_auc for r in results if r.kd_weight == 0))
        run.say(result.verdict())
        run.log_metrics({"kd_pays": float(result.kd_pays), "teacher.val_auc": result.teacher_val_auc,
                         "best_no_kd.val_auc": result.best_no_kd_val_auc})
        if cfg.register_as:
            result.registered = _register(run, out / "champion", cfg.register_as, {
                **lineage.tags(), "raykd.family": "knowledge-tracing", "raykd.distill_run_id": run.run_id,
                "raykd.knowledge": t_result.knowledge_source + (f" (sha256 {t_result.knowledge_digest})"
                                                                if t_result.knowledge_digest else "")})
        run.log_metrics({"champion.val_auc": champion.val_auc, "champion.test_auc": champion.test_auc,
                         "twin.test_auc": twin.test_auc, "teacher.test_auc": result.teacher_test_auc,
                         "simulator.test_auc": simulator_auc,
                         "speedup.batched": speed.batched_ratio, "speedup.single": speed.single_ratio})
        run.save(result, "kt_distill_result.json")
        run.say(f"champion hidden {champion.hidden} lambda {champion.kd_weight}: test AUC {champion.test_auc:.4f} "
                f"(no-KD twin {twin.test_auc:.4f}, teacher {result.teacher_test_auc:.4f}; calibrated simulator "
                f"{simulator_auc:.4f}); "
                f"{t_result.parameters / champion.parameters:.0f}x fewer parameters, {speed.batched_ratio:.0f}x "
                f"(batched) / {speed.single_ratio:.0f}x (one sequence) faster")
    return result


def _save_calibrated(cfg: KTJobConfig, ds: KTDataset, prep: kt_prepared.KTPrepared, t_result: KTTeacherResult,
                     model: object, hp: object, out: Path, run: StageRun) -> list:
    """Calibrate the champion on the training learners (raykd.kt.cohort.calibrate) and save it as the simulator."""
    from raykd.kt import cohort
    from raykd.kt import student as kt_student

    calibration = cohort.calibrate(model, [ds.train[i] for i in prep.train_learners], prep.index, prep.max_length,
                                   cfg.student.calibration_rounds, cfg.simulate.seed)
    for i, c in enumerate(calibration):
        run.say(f"calibration round {i + 1}: played training cohort correct rate {c.simulated_correct_rate:.3f} "
                f"(real {c.real_correct_rate:.3f}), per-skill r {c.skill_rate_pearson_r:.3f}")
    kt_student.save_student(out / "champion", model, hp, prep.skill_ids,
                            {"max_length": prep.max_length, "teacher_run_id": t_result.run_id,
                             "data_digest": prep.digest, "skill_names": {str(k): v for k, v in ds.skill_names.items()},
                             "item_names": {str(k): v for k, v in ds.item_names.items()}}, prep.item_skill)
    return calibration


def _register(run: StageRun, folder: Path, name: str, tags: dict[str, str]) -> str:
    from raykd.registry import log_simulator, register_champion

    info = log_simulator(folder)
    version = register_champion(info.model_uri, name, tags)
    return f"models:/{name}/{version.version}"


def run_kt_simulate(cfg: KTJobConfig, tracking_uri: str | None = None) -> KTSimulateResult:
    from raykd.kt import cohort
    from raykd.kt.student import load_student

    tdir, ddir = storage.localize(teacher_dir(cfg)), storage.localize(distill_dir(cfg))
    t_result = load_result(KTTeacherResult, tdir / "kt_teacher_result.json")
    d_result = load_result(KTDistillResult, ddir / "kt_distill_result.json")
    ds, prep = kt_prepared.reuse(tdir, cfg.data)
    model, _ = load_student(ddir / "champion")
    uri = resolve_tracking_uri(tracking_uri, cfg.tracking, t_result.tracking_uri)
    lineage = Lineage(data_digest=prep.digest, git_commit=git_commit(), teacher_run_id=t_result.run_id,
                      soft_labels_digest=t_result.soft_labels_digest)
    with StageRun.open("kt-simulate", cfg.name, distill_dir(cfg), cfg.tracking, uri, lineage,
                       params={"simulate": dataclasses.asdict(cfg.simulate)},
                       tags={"raykd.family": "knowledge-tracing", "raykd.distill_run_id": d_result.run_id}) as run:
        out = run.out
        cohorts = [cohort.play(model, ds.test, prep.index, cfg.simulate.seed + i, prep.max_length)
                   for i in range(cfg.simulate.cohorts)]
        each = [cohort.compare(ds.test, c, cfg.simulate.max_attempt) for c in cohorts]
        # Per-skill rates of one cohort carry binomial noise (a skill may have 30 attempts); their mean over
        # several simulated cohorts is what the simulator expects, and the spread of single cohorts is reported.
        mean = [np.mean([c[i] for c in cohorts], axis=0) for i in range(len(ds.test))]
        cmp = cohort.compare(ds.test, mean, cfg.simulate.max_attempt)
        singles = [(c.simulated_correct_rate, c.skill_rate_pearson_r) for c in each]
        write_text_atomic(out / "simulation.md", cohort.table(cmp, singles))
        run.log_artifact(cohort.plot(cmp, out / "simulation.png", len(cohorts)))
        run.log_artifact(out / "simulation.md")
        run.log_metrics({"real_correct_rate": cmp.real_correct_rate, "sim_correct_rate": cmp.simulated_correct_rate,
                         "skill_rate_pearson_r": cmp.skill_rate_pearson_r})
        result = KTSimulateResult(cfg.simulate.seed, cmp, singles)
        run.save(result, "kt_simulate_result.json")
        ids = "item" if prep.index.num_items else "skill"  # what the rates are per: the files' ids
        run.say(f"{cmp.learners} learners, {len(cohorts)} simulated cohort(s): correct rate real "
                f"{cmp.real_correct_rate:.3f}, simulated {cmp.simulated_correct_rate:.3f}; per-{ids} Pearson r "
                f"{cmp.skill_rate_pearson_r:.3f} over {cmp.skills_compared} {ids}s (single cohorts "
                f"{min(r for _, r in singles):.3f}-{max(r for _, r in singles):.3f}); {out / 'simulation.png'}")
    return result


def run_kt(cfg: KTJobConfig, tracking_uri: str | None = None) -> KTSimulateResult:
    """All three stages, one after the other."""
    run_kt_teacher(cfg, tracking_uri)
    run_kt_distill(cfg, tracking_uri)
    return run_kt_simulate(cfg, tracking_uri)
