"""The knowledge-tracing stages' typed results (torch-free, so reports and tools read them cheaply)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class CohortComparison:
    learners: int
    interactions: int
    real_correct_rate: float
    simulated_correct_rate: float
    skill_rate_pearson_r: float
    skills_compared: int
    learning_curve_real: list[float]  # correct rate at attempt 1..K on a skill
    learning_curve_simulated: list[float]
    skill_rates: dict[int, tuple[float, float, int]]  # skill id -> (real, simulated, attempts)


@dataclass
class CalibrationRound:
    """One round of `raykd.kt.cohort.calibrate`, measured before its bias update, on the training learners."""

    skill_rate_pearson_r: float  # played against real per-skill correct rates
    real_correct_rate: float
    simulated_correct_rate: float


@dataclass
class KTTeacherMember:
    family: str  # "attention" (AttentionKT) or "dkt"
    seed: int
    parameters: int
    best_epoch: int
    epochs_run: int
    val_auc: float
    test_auc: float
    train_seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    width: int = 0  # d_model of an AttentionKT, hidden size of a DKT
    selected: bool = True  # part of the teacher (chosen on validation), or trained and left out


@dataclass
class KTTeacherResult:
    """The teacher: the mean of its members' probabilities (AUCs and parameters are the whole teacher's)."""

    run_id: str
    tracking_uri: str
    data_digest: str
    knowledge_source: str
    skills: int
    parameters: int
    val_auc: float
    test_auc: float
    test_auc_interval: tuple[float, float]
    train_seconds: float
    soft_labels_digest: str
    members: list[KTTeacherMember] = field(default_factory=list)
    knowledge_digest: str = ""  # sha256 of knowledge/knowledge.npz

    @property
    def description(self) -> str:
        """The members the teacher is made of (those chosen on validation)."""
        names = {"attention": "AttentionKT", "dkt": "DKT"}
        used = [m for m in self.members if m.selected]
        counts = Counter(f"{names.get(m.family, m.family)} {m.width}" if m.width else names.get(m.family, m.family)
                         for m in used)
        if len(used) == 1:
            return next(iter(counts))
        return "mean of " + " + ".join(f"{n} x {name}" for name, n in counts.items())


@dataclass
class KTStudentResult:
    hidden: int
    kd_weight: float
    temperature: float
    val_auc: float
    test_auc: float
    test_auc_interval: tuple[float, float]
    best_epoch: int
    parameters: int
    seed: int = 0


@dataclass
class KTSetting:
    """One (hidden, lambda, T) over its seeds: mean and spread of its students' AUCs."""

    hidden: int
    kd_weight: float
    temperature: float
    seeds: int
    val_auc_mean: float
    test_auc_mean: float
    test_auc_min: float
    test_auc_max: float


@dataclass
class Speed:
    """Sequences per second on one CPU thread, teacher and student measured in the same process."""

    teacher_batched: float
    student_batched: float
    teacher_single: float
    student_single: float

    @property
    def batched_ratio(self) -> float:
        return self.student_batched / self.teacher_batched

    @property
    def single_ratio(self) -> float:
        return self.student_single / self.teacher_single


@dataclass
class KTDistillResult:
    run_id: str
    teacher_run_id: str
    teacher_test_auc: float
    teacher_parameters: int
    champion: KTStudentResult
    no_kd_twin: KTStudentResult
    trials: list[KTStudentResult]
    speed: Speed
    registered: str = ""
    settings: list[KTSetting] = field(default_factory=list)  # the champion's is chosen by mean validation AUC
    # The saved simulator: the champion after calibration (raykd.kt.cohort.calibrate), and its test AUC.
    calibration: list[CalibrationRound] = field(default_factory=list)
    simulator_test_auc: float = float("nan")
    # Whether this is distillation: the teacher better than the best no-KD student on validation. When it is not,
    # the champion is plain model selection among students and the report says so.
    teacher_val_auc: float = float("nan")
    best_no_kd_val_auc: float = float("nan")

    @property
    def kd_pays(self) -> bool:
        return self.teacher_val_auc > self.best_no_kd_val_auc

    def verdict(self) -> str:
        if self.kd_pays:
            return (f"the teacher (validation AUC {self.teacher_val_auc:.4f}) is better than the best student "
                    f"without KD ({self.best_no_kd_val_auc:.4f}): its soft labels have something to teach")
        return (f"the teacher (validation AUC {self.teacher_val_auc:.4f}) is NOT better than the best student "
                f"without KD ({self.best_no_kd_val_auc:.4f}): this run is not distillation, and the champion is "
                "model selection among students; a stronger teacher (more or wider members, teacher.select) "
                "is needed for KD to pay")


@dataclass
class KTSimulateResult:
    seed: int
    comparison: CohortComparison  # real against the mean of the simulated cohorts
    cohorts: list[tuple[float, float]] = field(default_factory=list)  # each cohort: (correct rate, Pearson r)
