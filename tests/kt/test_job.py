"""The knowledge-tracing stages end to end (tiny), their lineage, and their refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from raykd.errors import DataError


def test_pipeline_records_each_stage_and_its_lineage(tiny_kt, tracking_uri):
    import mlflow

    from raykd.kt.job import KTDistillResult, KTTeacherResult, distill_dir, load_soft_labels, teacher_dir
    from raykd.pipeline import load_result

    cfg, simulation = tiny_kt
    tdir, ddir = Path(teacher_dir(cfg)), Path(distill_dir(cfg))
    teacher = load_result(KTTeacherResult, tdir / "kt_teacher_result.json")
    distill = load_result(KTDistillResult, ddir / "kt_distill_result.json")
    assert teacher.knowledge_source == "minilm" and 0 < teacher.test_auc < 1
    # An attention member and a DKT member are trained on Ray Train; the teacher is the mean of those that greedy
    # selection keeps on validation, so it predicts the validation learners at least as well as its best member.
    assert [(m.family, m.epochs_run) for m in teacher.members] == [("attention", 2), ("dkt", 2)]
    used = [m for m in teacher.members if m.selected]
    assert used and teacher.parameters == sum(m.parameters for m in used)
    assert teacher.val_auc >= max(m.val_auc for m in teacher.members) - 1e-9
    from raykd.kt import preparation
    from raykd.kt import teacher as kt_teacher
    from raykd.kt.models import predict

    ds, prep = preparation.reuse(tdir, cfg.data)
    test = prep.windows(ds)["test"]
    model, _ = kt_teacher.load_model(tdir / "model")
    each = [predict(m, test, prep.index)[0] for m in model.members]
    assert len(each) == len(used)
    saved, _ = load_soft_labels(tdir / "soft_labels.npz", "test")
    assert all(np.allclose(s, np.mean(ms, axis=0), atol=1e-6) for s, *ms in zip(saved, *each, strict=True))
    # Soft labels: one next-step probability per predicted attempt, every skill's mastery for training.
    nxt, mastery = load_soft_labels(tdir / "soft_labels.npz", "train")
    assert all(m.shape == (len(n), teacher.skills) for n, m in zip(nxt, mastery, strict=True))
    assert all(((n > 0) & (n < 1)).all() for n in nxt)
    assert {(t.hidden, t.kd_weight) for t in distill.trials} == {(8, 0.0), (8, 1.0)}
    assert distill.champion.val_auc == max(t.val_auc for t in distill.trials)
    assert distill.no_kd_twin.kd_weight == 0.0 and distill.speed.student_batched > 0
    # The saved simulator is the champion calibrated on the training learners; its own test AUC is recorded.
    assert len(distill.calibration) == cfg.student.calibration_rounds > 0 and 0 < distill.simulator_test_auc < 1
    assert (ddir / "simulation.png").stat().st_size > 1000 and "Pearson r" in (ddir / "simulation.md").read_text()
    assert simulation.comparison.learners == 80 and 0 < simulation.comparison.simulated_correct_rate < 1
    # Lineage: the registered champion points back to the distill run, the teacher run and the data.
    client = mlflow.tracking.MlflowClient(tracking_uri)
    version = client.get_model_version_by_alias("kt-tiny", "champion")
    assert version.tags["raykd.teacher_run_id"] == teacher.run_id
    assert version.tags["raykd.data_digest"] == teacher.data_digest
    assert version.tags["raykd.soft_labels_digest"] == teacher.soft_labels_digest
    assert client.get_run(teacher.run_id).data.tags["raykd.family"] == "knowledge-tracing"


def test_champion_reproduces_the_saved_predictions_and_simulation_is_seeded(tiny_kt):
    from raykd.kt import cohort, preparation
    from raykd.kt.job import distill_dir, teacher_dir
    from raykd.kt.simulator import Simulator

    cfg, simulation = tiny_kt
    ds, prep = preparation.reuse(Path(teacher_dir(cfg)), cfg.data)
    sim = Simulator.load(Path(distill_dir(cfg)) / "champion")
    a = cohort.play(sim.model, ds.test, prep.index, seed=0, max_length=prep.max_length)
    b = cohort.play(sim.model, ds.test, prep.index, seed=0, max_length=prep.max_length)
    c = cohort.play(sim.model, ds.test, prep.index, seed=1, max_length=prep.max_length)
    assert all((x == y).all() for x, y in zip(a, b, strict=True))
    assert any((x != y).any() for x, y in zip(a, c, strict=True))
    # The stage compares the real cohort with the mean of its simulated cohorts (seeds 0, 1, ...).
    assert cohort.compare(ds.test, a).simulated_correct_rate == pytest.approx(simulation.cohorts[0][0])
    assert cohort.compare(ds.test, c).simulated_correct_rate == pytest.approx(simulation.cohorts[1][0])
    assert len(simulation.cohorts) == cfg.simulate.cohorts == 5
    rates = [rate for rate, _ in simulation.cohorts]
    assert simulation.comparison.simulated_correct_rate == pytest.approx(np.mean(rates))
    # One learner through the Simulator equals the batched model on the same history.
    seq = ds.test[0]
    history = list(zip(seq.skills[:5].tolist(), seq.correct[:5].tolist(), strict=True))
    out = sim.predict(history, [int(seq.skills[5])])
    from raykd.kt.models import make_batch

    logits = sim.model(make_batch([seq], prep.index))
    expected = torch.sigmoid(logits[0, 4, prep.index.skill[int(seq.skills[5])] - 1]).item()
    assert out.probabilities[0] == pytest.approx(expected, abs=1e-6)


def test_changed_data_is_refused_by_later_stages(tiny_kt, tmp_path):
    from raykd.kt import preparation
    from raykd.kt.job import teacher_dir

    cfg, _ = tiny_kt
    with pytest.raises(DataError, match="differs from what the teacher"):
        preparation.reuse(Path(teacher_dir(cfg)), type(cfg.data)(**{**cfg.data.__dict__, "limit": 70}))
    with pytest.raises(DataError, match="not found"):
        preparation.load(tmp_path)


def test_unnamed_skills_get_a_cooccurrence_graph():
    from raykd.kt.data import Sequence
    from raykd.kt.knowledge import build_knowledge, keep_neighbours

    seqs = [Sequence(np.array([1, 2]), np.array([1, 0])), Sequence(np.array([1, 3]), np.array([0, 0])),
            Sequence(np.array([2, 1, 2]), np.array([1, 1, 1]))]
    k = build_knowledge([1, 2, 3], {}, seqs, "minilm", neighbours=2)
    assert k.source == "cooccurrence"
    # P(t | s): skill 1 seen by 3 learners, with 2 by 2 of them and with 3 by 1 -> row 1 = [0, 2/3, 1/3].
    assert k.graph[0].tolist() == pytest.approx([0, 2 / 3, 1 / 3])
    assert k.graph[2].tolist() == pytest.approx([1.0, 0, 0])  # 3 only ever met 1
    kept = keep_neighbours(np.array([[1.0, 0.5, 0.2, 0.3], [0.1, 1, 0.1, 0.1], [0, 0, 1, 0], [1, 1, 1, 1]]), 1)
    assert kept[0].tolist() == [0, 1, 0, 0] and kept[2].tolist() == [0, 0, 0, 0]


def test_bad_kt_configs_fail_clearly(tmp_path):
    from raykd.config import load_config
    from raykd.errors import ConfigError
    from raykd.kt.config import KTJobConfig

    path = Path(tmp_path / "kt.yaml")
    for text, needle in (("search: {kd_weight: [0.5]}", "search.kd_weight: must include 0"),
                         ("teacher: {d_model: 30, heads: 4}", "teacher.d_model: must be a multiple of heads"),
                         ("knowledge: {model: gpt9}", "knowledge.model: 'gpt9' is neither a zoo model"),
                         ("data: {max_length: 1}", "data.max_length: must be >= 2"),
                         ("knowledge: {relations: prerequisite, relation_model: minilm}",
                          "knowledge.relation_model: 'minilm' is not an LLM of the model zoo"),
                         ("search: {seeds: [1, 1]}", "search.seeds: at least one seed, no repeats"),
                         ("teacher: {seeds: []}", "teacher.seeds: at least one seed"),
                         ("teacher: {recurrent: {seeds: [2, 2]}}", "teacher.recurrent.seeds: no repeats")):
        path.write_text(text)
        with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
            load_config(path, KTJobConfig)


def test_an_unseen_unnamed_dataset_trains_and_simulates_with_one_command(ray_session, tracking_uri, tmp_path):
    """A folder the project has never seen (other file names, skill ids, no names): `raykd kt` with a config
    naming the folder runs every stage; its skill graph comes from co-occurrence."""
    from raykd.cli import main

    rng = np.random.default_rng(5)
    folder = tmp_path / "my_kt_data"
    folder.mkdir()
    for name, learners in (("course_train.txt", 40), ("course_test.txt", 15)):
        lines = []
        for _ in range(learners):
            n = int(rng.integers(5, 30))
            skills = rng.choice([501, 502, 507, 530, 544], n)
            correct = (rng.random(n) < 0.4 + 0.1 * (skills % 5)).astype(int)
            lines += [str(n), ",".join(map(str, skills)), ",".join(map(str, correct))]
        (folder / name).write_text("\n".join(lines) + "\n")
    config = tmp_path / "kt.yaml"
    config.write_text(f"""
name: kt-unseen
output_dir: {tmp_path / 'out'}
data: {{path: {folder}, validation: 0.2}}
teacher: {{d_model: 8, layers: 1, heads: 2, epochs: 1, batch_size: 16}}
student: {{embed: 4, hidden: 4, epochs: 1, batch_size: 16}}
search: {{hidden: [4], kd_weight: [0.0, 1.0], cpus_per_trial: 0.5}}
""")
    assert main(["kt", "--config", str(config), "--tracking-uri", tracking_uri]) == 0
    result = json.loads((tmp_path / "out" / "teacher" / "kt_teacher_result.json").read_text())
    assert result["knowledge_source"] == "cooccurrence" and result["skills"] == 5
    simulation = json.loads((tmp_path / "out" / "distill" / "kt_simulate_result.json").read_text())
    assert simulation["comparison"]["learners"] == 15


def test_lineage_of_the_registered_simulator(tiny_kt, tracking_uri):
    from raykd.registry import lineage

    chain = dict(lineage("kt-tiny@champion", tracking_uri))
    assert "DKT champion, test AUC" in chain["student run"] and "AttentionKT" in chain["teacher run"]
    assert chain["knowledge"].startswith("minilm (sha256 ") and len(chain["data digest"]) == 64


def test_champion_setting_is_chosen_by_mean_validation_auc_over_seeds():
    from raykd.kt.results import KTStudentResult
    from raykd.kt.student import choose, trial_grid

    def r(lam, seed, val, test):
        return KTStudentResult(64, lam, 1.0, val, test, (test, test), 1, 10, seed)

    # lambda 1 has the single best validation AUC (seed 1) but the lower mean; lambda 0.5 wins on the mean.
    results = [r(0.0, 0, 0.80, 0.79), r(0.0, 1, 0.81, 0.80), r(1.0, 0, 0.70, 0.70), r(1.0, 1, 0.90, 0.81),
               r(0.5, 0, 0.84, 0.82), r(0.5, 1, 0.83, 0.83)]
    settings, champion, twin = choose(results)
    assert (results[champion].kd_weight, results[champion].seed) == (0.5, 0)
    assert (results[twin].kd_weight, results[twin].seed) == (0.0, 0)
    by = {(s.kd_weight, s.temperature): s for s in settings}
    assert by[(0.5, 1.0)].val_auc_mean == pytest.approx(0.835) and by[(1.0, 1.0)].test_auc_max == 0.81
    from raykd.kt.config import KTSearchConfig

    grid = trial_grid(KTSearchConfig(seeds=[0, 1], hidden=[32], kd_weight=[0.0, 1.0], temperature=[1.0, 2.0]))
    assert len(grid) == 2 * (1 + 2) and {g["seed"] for g in grid} == {0, 1}


def test_prerequisite_relations_from_a_zoo_llm(smollm2, zoo_cache, monkeypatch):
    """The LLM judges each skill's nearest neighbours as prerequisites; the graph keeps its row-normalised weights."""
    from raykd.kt.knowledge import build_knowledge, prerequisite_probabilities

    monkeypatch.setenv("RAYKD_ZOO_DIR", str(zoo_cache))
    names = {1: "Addition", 2: "Multiplication", 3: "Area Circle", 4: "Circumference"}
    k = build_knowledge([1, 2, 3, 4], names, [], "minilm", neighbours=2, relations="prerequisite")
    assert k.source == "minilm + smollm2-135m prerequisites" and k.embeddings.shape == (4, 384)
    assert np.allclose(k.graph.sum(1), 1.0, atol=1e-5) and (np.diag(k.graph) == 0).all()
    p = prerequisite_probabilities(list(names.values()), [(1, 0), (0, 1)], "smollm2-135m")
    assert p.shape == (2,) and ((p > 0) & (p < 1)).all()


def test_teacher_resumes_from_its_last_epoch_checkpoint(ray_session, tmp_path):
    """A second run under the same name starts after the last checkpointed epoch (weights, optimizer, schedule)."""
    from raykd.config import ScalingConfig
    from raykd.kt import teacher
    from raykd.kt.config import KTTeacherConfig
    from raykd.kt.data import Sequence
    from raykd.kt.models import KTIndex

    rng = np.random.default_rng(0)
    seqs = [Sequence(rng.integers(1, 4, 12), rng.integers(0, 2, 12)) for _ in range(24)]
    index = KTIndex.of([1, 2, 3])
    knowledge = {"embeddings": np.zeros((3, 1), np.float32), "graph": np.zeros((3, 3), np.float32)}
    model_cfg, hp = teacher.member_specs(KTTeacherConfig(d_model=8, layers=1, heads=2, dropout=0.0, epochs=1,
                                                         batch_size=8), 3, 12)[0]
    scaling = ScalingConfig(num_workers=2, cpus_per_worker=0.5)
    _, first = teacher.fit(seqs[:16], seqs[16:], index, knowledge, model_cfg, hp, scaling, tmp_path, "resume")
    assert first.epoch == 0 and len(first.history) == 1
    folder, second = teacher.fit(seqs[:16], seqs[16:], index, knowledge, model_cfg, {**hp, "epochs": 2}, scaling,
                                 tmp_path, "resume")
    assert second.epoch == 1 and [h["epoch"] for h in second.history] == [1, 2]
    assert (folder / teacher.BEST).is_file()


def test_a_teacher_folder_without_members_is_a_clear_error(tmp_path):
    from raykd.errors import RaykdError
    from raykd.kt import teacher

    (tmp_path / teacher.MODEL_JSON).write_text('{"num_skills": 3}')
    with pytest.raises(RaykdError, match="rerun `raykd kt-teacher`"):
        teacher.load_model(tmp_path)
