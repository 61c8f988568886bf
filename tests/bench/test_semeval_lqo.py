"""bench/semeval_lqo.py's summary: students judged by their mean over seeds against the teacher, fold by fold."""

from bench.semeval_lqo import stack_config, summary


def row(model: str, accuracy: float, seed: int | None = None) -> dict:
    out = {"model": model, "accuracy": accuracy, "low": accuracy - 0.02, "high": accuracy + 0.02}
    return out if seed is None else {**out, "seed": seed}


def fold(name: str, teacher: float, kd: list[float], majority: float = 0.6) -> dict:
    return {"fold": name, "test_questions": 26, "test_responses": 1000, "majority": majority,
            "rows": [row("teacher (stack)", teacher), *[row("pair student KD", a, s) for s, a in enumerate(kd)]],
            "stack": ["pair:minilm", "text"]}


def test_the_kd_student_is_judged_by_its_mean_over_seeds() -> None:
    # fold 0: seeds 0.70 / 0.72 / 0.74, mean 0.72 against a 0.73 teacher: within 0.02, though one seed is not
    text = summary([fold("fold0", 0.73, [0.70, 0.72, 0.74]), fold("fold1", 0.70, [0.69, 0.69, 0.69])])
    assert "0.720 (0.700 / 0.720 / 0.740)" in text
    assert "pair student KD: within 0.02 of the teacher (stack) on every fold: met" in text
    assert "above the majority rate on every fold: met" in text
    assert "pair:minilm, text" in text


def test_a_fold_under_the_majority_rate_or_too_far_from_the_teacher_is_a_miss() -> None:
    text = summary([fold("fold0", 0.75, [0.72, 0.72, 0.72]), fold("fold1", 0.70, [0.59, 0.61, 0.60], 0.61)])
    assert "within 0.02 of the teacher (stack) on every fold: **MISSED**" in text
    assert "above the majority rate on every fold: **MISSED**" in text


def test_the_stack_reads_what_carries_to_new_questions(tmp_path) -> None:
    from raykd.config import from_dict
    from raykd.teacher.config import TeacherJobConfig

    cfg = from_dict(TeacherJobConfig, {**stack_config(tmp_path / "fold0.parquet", ["correct", "incorrect"]),
                                       "output_dir": str(tmp_path / "out")})
    assert cfg.model.kind == "stack" and cfg.stack.group_folds_by == "question"
    assert "pair" in cfg.stack.groups
