"""The 3-line knowledge-tracing reader: every bad-input case names its file, line and reason."""

from __future__ import annotations

import pytest

from raykd.errors import DataError
from raykd.kt.data import load_kt_folder, looks_like_kt, read_sequences, read_skill_names, split_learners, windows

GOOD = "3\n1,2,1\n0,1,1\n2,\n2,3,\n1,0,\n"


def write(tmp_path, text, name="kt_train.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_reads_sequences_with_trailing_commas_and_blank_lines(tmp_path):
    seqs, problems = read_sequences(write(tmp_path, GOOD + "\n\n"))
    assert [s.skills.tolist() for s in seqs] == [[1, 2, 1], [2, 3]]
    assert [s.correct.tolist() for s in seqs] == [[0, 1, 1], [1, 0]]
    assert problems == []


@pytest.mark.parametrize("text, line, reason", [
    ("3\n1,2\n0,1,1\n", 2, "2 skill ids but line 1 says 3 attempts"),
    ("2\n1,2\n0,1,1\n", 3, "3 correctness values but line 1 says 2 attempts"),
    ("2\n1,2\n0,2\n", 3, "correctness must be 0 or 1, got 2"),
    ("2\n1,x\n0,1\n", 2, "skill ids must be integers, got 'x'"),
    ("0\n\n\n1\n1\n1\n", 1, "empty sequence"),
    ("2\n1,-4\n0,1\n", 2, "skill ids must be >= 0"),
    (GOOD + "2\n1,2\n", 7, "needs 3 lines"),
    ("1,2\n0,1\n2\n", 1, "expected the number of attempts"),
])
def test_bad_sequences_name_file_line_and_reason(tmp_path, text, line, reason):
    path = write(tmp_path, text)
    with pytest.raises(DataError) as e:
        read_sequences(path)
    assert str(path) in str(e.value) and f"line {line}:" in str(e.value) and reason in str(e.value)


def test_skip_invalid_drops_the_sequence_and_keeps_the_problem(tmp_path):
    path = write(tmp_path, GOOD + "2\n1,2\n0,7\n" + GOOD)
    seqs, problems = read_sequences(path, skip_invalid=True)
    assert len(seqs) == 4 and len(problems) == 1
    assert problems[0].row == 9 and "0 or 1" in problems[0].reason


def test_unknown_skill_ids_against_the_name_file(tmp_path):
    write(tmp_path, GOOD)
    write(tmp_path, "2\n1,9\n1,1\n2\n1,3\n0,1\n", "kt_test.csv")
    write(tmp_path, "1\tAddition\n2\tSubtraction\n3\tFractions\n", "kt_skill_mapping.txt")
    with pytest.raises(DataError, match=r"kt_test.csv: line 2: unknown skill id\(s\) \[9\]"):
        load_kt_folder(tmp_path)
    ds = load_kt_folder(tmp_path, skip_invalid=True)
    assert [s.skills.tolist() for s in ds.test] == [[1, 3]] and ds.problems[0].row == 2


def test_folder_without_names_and_inspect_detection(tmp_path):
    write(tmp_path, GOOD)
    write(tmp_path, "2\n3,4\n1,1\n", "kt_test.csv")
    ds = load_kt_folder(tmp_path)
    assert ds.skill_names == {} and ds.skill_ids == [1, 2, 3, 4]
    assert ds.summary()["train"] == {"sequences": 2, "interactions": 5, "skills": 3, "correct_rate": 0.6,
                                     "max_length": 3, "median_length": 2.5}
    assert looks_like_kt(tmp_path) and not looks_like_kt(tmp_path / "nowhere")
    other = load_kt_folder(tmp_path)
    assert other.digest() == ds.digest()
    write(tmp_path, GOOD.replace("0,1,1", "0,1,0"))
    assert load_kt_folder(tmp_path).digest() != ds.digest()


def test_skill_name_files_either_column_order(tmp_path):
    assert read_skill_names(write(tmp_path, "7\tArea Circle\n", "a.txt")) == {7: "Area Circle"}
    assert read_skill_names(write(tmp_path, "Area Circle\t7\n", "b.txt")) == {7: "Area Circle"}
    with pytest.raises(DataError, match="line 2: skill 7 is named twice"):
        read_skill_names(write(tmp_path, "7\tA\n7\tB\n", "c.txt"))
    with pytest.raises(DataError, match="line 1: expected 'id<TAB>name'"):
        read_skill_names(write(tmp_path, "just words\n", "d.txt"))


def test_learner_split_is_seeded_and_disjoint_and_windows_cut_long_sequences(tmp_path):
    train, val = split_learners(50, 0.2, seed=3)
    assert len(val) == 10 and not set(train) & set(val) and sorted([*train, *val]) == list(range(50))
    assert (split_learners(50, 0.2, seed=3)[1] == val).all() and not (split_learners(50, 0.2, seed=4)[1] == val).all()
    seqs, _ = read_sequences(write(tmp_path, "5\n1,2,3,4,5\n1,1,0,0,1\n"))
    assert [w.skills.tolist() for w in windows(seqs, 2)] == [[1, 2], [3, 4]]  # [5] alone predicts nothing


def test_real_assistments_folder(shared_data):
    ds = load_kt_folder("assistments2009_kt/dkvmn_assist2009_updated")
    s = ds.summary()
    assert (s["train"]["sequences"], s["train"]["interactions"], s["test"]["sequences"]) == (2921, 224218, 1230)
    assert len(ds.skill_names) == 110 and ds.problems == []
