import pytest

from raykd.data import read_semeval
from raykd.errors import DataError


def test_scientsbank_2way(shared_data):
    ds = read_semeval(shared_data / "semeval2013_task7", corpus="sciEntsBank", ways=2)
    train, test = ds.split("train"), ds.split("test")
    assert len(train) == 4_969 and len(test) == 540
    dist = train.summary()["tasks"]["scientsbank_2way"]["label_distribution"]
    assert dist == {"incorrect": 2_961, "correct": 2_008}
    row = train.frame.iloc[0]
    assert row["question"] and row["reference"]


def test_beetle_ways(shared_data):
    root = shared_data / "semeval2013_task7"
    two = read_semeval(root, corpus="beetle", ways=2)
    assert len(two.split("train")) == 3_941 and len(two.split("test")) == 439
    three = read_semeval(root, corpus="beetle", ways=3)
    assert three.split("train").summary()["tasks"]["beetle_3way"]["label_distribution"] == {
        "incorrect": 1_227, "contradictory": 1_049, "correct": 1_665}
    assert three.split("test").summary()["tasks"]["beetle_3way"]["label_distribution"] == {
        "incorrect": 152, "contradictory": 111, "correct": 176}
    five = read_semeval(root, corpus="beetle", ways=5)
    assert len(five) == 3_941 and set(five.frame["split"]) == {"train"}
    # Beetle keeps all of a question's reference answers.
    assert max(r.count("\n") for r in five.frame["reference"]) >= 1


def test_scientsbank_has_no_5way_here(shared_data):
    with pytest.raises(DataError, match="Beetle only"):
        read_semeval(shared_data / "semeval2013_task7", corpus="sciEntsBank", ways=5)
