"""Choosing the champion: the best validation score among finished trials within the size limit and, when
`min_speedup` is set, fast enough; a constraint nothing meets is an error, not a silent warning."""

import math

import pandas as pd
import pytest
from ray import tune

from raykd.data import TaskSpec
from raykd.distill.config import StudentConfig
from raykd.distill.handoff import TeacherReference
from raykd.errors import RaykdError
from raykd.evaluation import TaskScores
from raykd.footprint import throughput
from raykd.heads import TaskLayout
from raykd.students.architectures import make_model
from raykd.students.artifact import StudentScorer, save_student
from raykd.students.vocab import Vocabulary
from raykd.tune.config import TuneJobConfig
from raykd.tune.search import TrialResult, choose, no_kd_rival

LAYOUT = TaskLayout.of([TaskSpec("asap_1", "multiclass", ("0", "1", "2", "3"), ordinal=True)])
# A teacher of a million parameters scoring one response a second (speed-ups are then a student's own rate).
TEACHER = TeacherReference(parameters=10**6, responses_per_s=1.0, test=TaskScores({}, {}, 0.0), run_id="t")
TEXTS = [f"the mass of vinegar and the size of container number {i} " * 3 for i in range(64)]


def checkpoint(tmp_path, name, **sizes):
    vocab = Vocabulary.build(TEXTS, min_freq=1)
    model = make_model(StudentConfig(**sizes), len(vocab), LAYOUT)
    save_student(tmp_path / name / "student", model, "lstm", vocab, LAYOUT, {}, max_len=64)
    return tune.Checkpoint.from_directory(str(tmp_path / name))


def trial(name, score, parameters=1000, complete=True):
    return TrialResult(trial_id=name, params={}, val_score=score, epochs=3, complete=complete,
                       parameters=parameters, history=[])


def test_min_speedup_constrains_the_winner(tmp_path):
    checkpoints = {"slow": checkpoint(tmp_path, "slow", hidden=256, layers=3, embed_dim=64),
                   "fast": checkpoint(tmp_path, "fast", hidden=8)}
    trials = [trial("slow", 0.9), trial("fast", 0.8), trial("stopped", 0.95, complete=False),
              trial("huge", 0.99, parameters=10**9)]
    bench = pd.DataFrame({"text": TEXTS, "task": "asap_1"})
    speeds = {k: throughput(StudentScorer(tmp_path / k / "student"), TEXTS, ["asap_1"] * 64, 64, repeats=3)
              for k in checkpoints}
    assert speeds["fast"] > 5 * speeds["slow"]

    cfg = TuneJobConfig(max_param_ratio=0.01)
    winner, _ = choose(cfg, trials, checkpoints, TEACHER, bench, tmp_path / "champion")
    assert winner.trial_id == "slow"  # best finished, within the size limit: stopped and huge trials are out

    between = math.sqrt(speeds["fast"] * speeds["slow"])  # the slow one is below it, the fast one above
    cfg = TuneJobConfig(max_param_ratio=0.01, min_speedup=between)
    winner, speedup = choose(cfg, trials, checkpoints, TEACHER, bench, tmp_path / "champion2")
    assert winner.trial_id == "fast" and speedup >= between
    assert StudentScorer(tmp_path / "champion2").manifest["spec"]["hidden"] == 8

    with pytest.raises(RaykdError, match="faster than the teacher"):
        choose(TuneJobConfig(min_speedup=1e12), trials, checkpoints, TEACHER, bench, tmp_path / "c3")


def test_no_kd_rival_is_the_best_finished_no_kd_trial_of_the_champions_family():
    cfg = TuneJobConfig(teacher="t")

    def trial(tid, arch, kd, score, complete=True):
        return TrialResult(tid, {"student.arch": arch, "distill.kd_weight": kd}, score, 3, complete, 100, [])

    trials = [trial("kd", "moe", 0.5, 0.80), trial("lstm0", "lstm", 0.0, 0.79), trial("moe0a", "moe", 0.0, 0.70),
              trial("moe0b", "moe", 0.0, 0.75), trial("moe0c", "moe", 0.0, 0.78, complete=False)]
    assert no_kd_rival(cfg, trials, trials[0]).trial_id == "moe0b"
    assert no_kd_rival(cfg, trials, trials[1]) is None  # a no-KD champion has no rival to measure KD against
    assert no_kd_rival(cfg, trials[:2], trials[0]) is None
