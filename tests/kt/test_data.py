"""The 3-line knowledge-tracing reader: every bad-input case names its file, line and reason."""

from __future__ import annotations

import pytest

from raykd.errors import DataError
from raykd.kt.data import (
    load_kt_folder,
    looks_like_kt,
    read_item_skills,
    read_names,
    read_sequences,
    split_learners,
    windows,
)

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
    with pytest.raises(DataError, match=r"kt_test.csv: line 2: unknown id\(s\) \[9\]"):
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
    assert read_names(write(tmp_path, "7\tArea Circle\n", "a.txt")) == {7: "Area Circle"}
    assert read_names(write(tmp_path, "Area Circle\t7\n", "b.txt")) == {7: "Area Circle"}
    with pytest.raises(DataError, match="line 2: id 7 is named twice"):
        read_names(write(tmp_path, "7\tA\n7\tB\n", "c.txt"))
    with pytest.raises(DataError, match="line 2: expected 'id<TAB>name'"):
        read_names(write(tmp_path, "id\tname\njust words\n", "d.txt"))
    with pytest.raises(DataError, match="no id rows after the header 'just words'"):
        read_names(write(tmp_path, "just words\n", "e.txt"))


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


def test_name_files_with_a_header_in_either_column_order(tmp_path):
    assert read_names(write(tmp_path, "qid\tqname\n5\tAdd fractions\n6\tArea\n", "a.txt")) == {5: "Add fractions",
                                                                                              6: "Area"}
    assert read_names(write(tmp_path, "qname\tqid\nAdd fractions\t5\n", "b.txt")) == {5: "Add fractions"}
    with pytest.raises(DataError, match="no rows"):
        read_names(write(tmp_path, "\n", "c.txt"))


def test_item_to_skill_maps_item_first_unless_the_header_puts_the_skill_first(tmp_path):
    assert read_item_skills(write(tmp_path, "10\t1\n11\t1\n12\t2\n", "a.txt")) == {10: 1, 11: 1, 12: 2}
    assert read_item_skills(write(tmp_path, "qid\tsid\n10\t1\n", "b.txt")) == {10: 1}
    assert read_item_skills(write(tmp_path, "sid\tqid\n1\t10\n2\t12\n", "c.txt")) == {10: 1, 12: 2}
    with pytest.raises(DataError, match=r"c2.txt: line 3: item 10 is mapped to two skills \(1 and 2\)"):
        read_item_skills(write(tmp_path, "qid\tsid\n10\t1\n10\t2\n", "c2.txt"))
    with pytest.raises(DataError, match="line 1: expected 'item<TAB>skill' ids"):
        read_item_skills(write(tmp_path, "10\t1\t3\n", "d.txt"))


def test_item_level_folder_uses_items_and_their_skills_and_inspect_reports_the_files(tmp_path, capsys):
    from raykd.cli import main
    from raykd.kt.models import KTIndex

    write(tmp_path, "3\n10,11,12\n0,1,1\n2\n12,10\n1,0\n")
    write(tmp_path, "2\n11,12\n1,1\n", "kt_test.csv")
    write(tmp_path, "qid\tsid\n10\t1\n11\t1\n12\t2\n", "kt_qid_sid")
    write(tmp_path, "qid\tqname\n10\tq-ten\n11\tq-eleven\n", "kt_qname_qid")
    ds = load_kt_folder(tmp_path)
    assert ds.item_skill == {10: 1, 11: 1, 12: 2} and ds.item_ids == [10, 11, 12] and ds.skill_ids == [1, 2]
    assert ds.item_names == {10: "q-ten", 11: "q-eleven"} and ds.skill_names == {}
    index = KTIndex.of(ds.skill_ids, ds.item_skill)
    assert index.skill == {10: 1, 11: 1, 12: 2} and index.item == {10: 1, 11: 2, 12: 3} and index.num_items == 3
    assert main(["data", "inspect", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "2 skills (0 named), 3 items (2 named)" in out
    assert "item-to-skill file: kt_qid_sid" in out and "item-name file: kt_qname_qid" in out
    assert "interactions  items" in out  # the per-file table counts items
    # An item the map does not know is refused with its file and line.
    write(tmp_path, "2\n11,99\n1,1\n", "kt_test.csv")
    with pytest.raises(DataError, match=r"kt_test.csv: line 2: unknown id\(s\) \[99\]"):
        load_kt_folder(tmp_path)


def test_an_identity_item_map_means_the_ids_are_skills(tmp_path):
    write(tmp_path, GOOD)
    write(tmp_path, "2\n1,3\n0,1\n", "kt_test.csv")
    write(tmp_path, "1\t1\n2\t2\n3\t3\n", "kt_qid_sid")
    write(tmp_path, "qname\tqid\nAddition\t1\nSubtraction\t2\nFractions\t3\n", "kt_qname_qid")
    ds = load_kt_folder(tmp_path)
    assert ds.item_skill == {} and ds.item_ids == [] and ds.skill_ids == [1, 2, 3]
    assert ds.skill_names == {1: "Addition", 2: "Subtraction", 3: "Fractions"}  # the item names name the skills
    assert "the ids are skills" in ds.files["item-to-skill"]
    write(tmp_path, "1\t1\n2\t2\n", "kt_qid_sid")  # the map is the id list: 3 is unknown
    with pytest.raises(DataError, match=r"unknown id\(s\) \[3\]"):
        load_kt_folder(tmp_path)
