"""`raykd kt` on data it was not designed on: long sequences over many item ids with an item-to-skill map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from bench.kt_synthetic import write_item_level_folder


def test_kt_on_long_many_item_sequences_chooses_a_teacher_better_than_its_students(ray_session, tracking_uri,
                                                                                     tmp_path):
    from raykd.cli import main
    from raykd.kt.job import KTDistillResult, KTTeacherResult, distill_dir, teacher_dir
    from raykd.kt.preparation import load as load_prepared
    from raykd.pipeline import load_result

    write_item_level_folder(tmp_path / "data", learners=60, attempts=400, items=300, skills=6, seed=0)
    config = tmp_path / "kt.yaml"
    config.write_text(yaml.safe_dump({
        "name": "kt-items", "output_dir": str(tmp_path / "run"),
        "data": {"path": str(tmp_path / "data"), "max_length": 100, "validation": 0.2},
        "knowledge": {"model": "cooccurrence"},
        "teacher": {"d_model": 16, "layers": 1, "heads": 2, "epochs": 10, "batch_size": 16, "lr": 0.01,
                    "recurrent": {"seeds": [0], "embed": 16, "hidden": [8, 16], "epochs": 10, "lr": 0.01}},
        "student": {"embed": 8, "hidden": 8, "epochs": 10, "batch_size": 16, "lr": 0.01, "calibration_rounds": 1},
        "search": {"hidden": [8], "kd_weight": [0.0, 1.0], "cpus_per_trial": 0.5},
        "simulate": {"cohorts": 1}}))
    assert main(["kt", "--config", str(config), "--tracking-uri", tracking_uri]) == 0

    from raykd.config import load_config
    from raykd.kt.config import KTJobConfig

    cfg = load_config(config, KTJobConfig)
    teacher = load_result(KTTeacherResult, Path(teacher_dir(cfg)) / "kt_teacher_result.json")
    distill = load_result(KTDistillResult, Path(distill_dir(cfg)) / "kt_distill_result.json")
    prep = load_prepared(Path(teacher_dir(cfg)))
    # Item level: every item has its own index, mapped to one of the 6 skills; sequences of 400 cut into 100s.
    assert prep.index.num_items == 300 and prep.index.num_skills == 6 and prep.max_length == 100
    # Three candidate members (an AttentionKT, a DKT per width); the chosen ones predict validation at least as
    # well as any student trained from them, with or without KD.
    assert [(m.family, m.width) for m in teacher.members] == [("attention", 16), ("dkt", 8), ("dkt", 16)]
    assert any(m.selected for m in teacher.members)
    assert teacher.val_auc >= max(t.val_auc for t in distill.trials), (teacher.val_auc, distill.trials)
    assert teacher.val_auc > 0.65  # the models learn the data (chance is 0.5)
    assert distill.teacher_val_auc == teacher.val_auc and distill.kd_pays
    assert distill.teacher_parameters == teacher.parameters
    # The served simulator answers item ids through their skill and difficulty, as the batched model does.
    import torch

    from raykd.kt.data import Sequence
    from raykd.kt.models import make_batch
    from raykd.kt.simulator import Simulator

    sim = Simulator.load(Path(distill_dir(cfg)) / "champion")
    assert sim.ids == list(range(1, 301)) and sim.index.num_items == 300
    out = sim.predict([(5, 1), (17, 0)], [5, 200])
    seqs = [Sequence(np.array([5, 17, q]), np.array([1, 0, 0])) for q in (5, 200)]
    expected = torch.sigmoid(sim.model.predict_step(make_batch(seqs, sim.index))[1][:, 1])
    assert np.allclose(out.probabilities, expected.detach().numpy(), atol=1e-6)
