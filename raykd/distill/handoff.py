"""What the teacher stage hands the student stages (distill, tune, the benchmarks): one setup for all of them.

    teacher folder ──open_student_stage──> StudentStage: the teacher's output, its prepared data (texts checked
                                           against the record, each text hashed once), its soft labels joined
                                           once, the task layout, the lineage
                   ──stage.reference()──> TeacherReference: the teacher's size, its test scores (from its own
                                           result) and its CPU throughput, measured once per teacher on a fixed
                                           sample (BENCHMARK) and kept in the teacher folder, so every stage
                                           that compares a student with this teacher uses the same figure
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from raykd import storage
from raykd.data import ScoringDataset
from raykd.data.config import DataConfig
from raykd.evaluation import TaskScores
from raykd.footprint import throughput
from raykd.heads import TaskLayout
from raykd.io import write_text_atomic
from raykd.pipeline import Lineage, say
from raykd.teacher.job import TeacherOutput

REFERENCE = "teacher_reference.json"


@dataclass(frozen=True)
class Benchmark:
    """The responses a teacher and its students are timed on: up to `responses` held-out (validation and
    test) responses drawn with `seed`, scored in batches of `batch`."""

    responses: int = 512
    batch: int = 64
    seed: int = 0

    def sample(self, frame: pd.DataFrame) -> pd.DataFrame:
        held = frame[frame["split"].isin(["validation", "test"])]
        return held.sample(n=min(self.responses, len(held)), random_state=self.seed)


BENCHMARK = Benchmark()


@dataclass
class TeacherReference:
    """The teacher as the student stages compare with it."""

    parameters: int
    responses_per_s: float  # CPU, on BENCHMARK's sample, in the process that measured it first
    test: TaskScores
    run_id: str
    benchmark: Benchmark = BENCHMARK
    model_digest: str = ""  # sha256 of the teacher's manifest: a retrained teacher is measured again


@dataclass
class StudentStage:
    """A student stage's inputs, read once from the teacher stage's folder."""

    teacher: TeacherOutput
    ds: ScoringDataset
    frame: pd.DataFrame  # the prepared rows with the teacher's probabilities in `soft`
    layout: TaskLayout
    lineage: Lineage

    @property
    def bench(self) -> pd.DataFrame:
        """The responses scorers are timed on."""
        return BENCHMARK.sample(self.frame)

    def reference(self) -> TeacherReference:
        """The teacher's reference figures: read from the teacher folder, measured and kept there the first
        time a student stage asks."""
        from raykd.pipeline import load_result
        from raykd.scoring import MANIFEST

        model_digest = hashlib.sha256((self.teacher.model_dir / MANIFEST).read_bytes()).hexdigest()
        path = self.teacher.folder / REFERENCE
        if path.is_file():
            kept = load_result(TeacherReference, path)
            if kept.model_digest == model_digest and kept.benchmark == BENCHMARK:
                return kept
        from raykd.scoring import load_scorer

        scorer = load_scorer(str(self.teacher.model_dir))
        bench = self.bench
        rps = throughput(scorer, bench["text"].tolist(), bench["task"].tolist(), BENCHMARK.batch)
        say("teacher", f"{scorer.num_parameters:,} parameters, {rps:.1f} responses/s (CPU, batch {BENCHMARK.batch}, "
                       f"{len(bench)} responses); kept in {path}")
        reference = TeacherReference(scorer.num_parameters, rps, self.teacher.result.splits["test"],
                                     self.teacher.result.run_id or "", BENCHMARK, model_digest)
        text = json.dumps(dataclasses.asdict(reference), indent=2)
        write_text_atomic(path, text)
        if storage.is_remote(self.teacher.location):  # kept where the teacher is, for every later stage
            storage.write_text(storage.join(self.teacher.location, REFERENCE), text)
        return reference


def open_student_stage(teacher_folder: str | Path, data: DataConfig | None, stage: str) -> StudentStage:
    """The teacher stage's output at `teacher_folder` as `stage` reads it: its prepared data (read with `data`,
    default the recorded config) and its soft labels (unlabelled rows it did not score are kept without)."""
    from raykd.data.preparation import reuse
    from raykd.distill.softlabels import attach_soft_labels

    teacher = TeacherOutput.load(teacher_folder)
    ds = reuse(teacher.folder, data, stage)
    frame = attach_soft_labels(ds, teacher.soft_labels, require_all=False,
                               source=f"the teacher stage at {teacher.folder}")
    return StudentStage(teacher, ds, frame, TaskLayout.of(ds.tasks), teacher.lineage(ds.digest()))
