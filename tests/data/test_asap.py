import shutil

import pytest

from raykd.data import load_dataset, read_asap
from raykd.data.asap import SCIENCE_SETS
from raykd.errors import DataError

# Per-set counts from the ASAP-SAS provenance table (Kaggle train = GOLD train + GOLD test).
SET_COUNTS = {1: 1672, 2: 1278, 3: 1808, 4: 1657, 5: 1795, 6: 1797, 7: 1799, 8: 1799, 9: 1798, 10: 1640}


def test_all_scored_responses(shared_data):
    ds = read_asap(shared_data / "asap_sas")
    assert len(ds) == 17_043
    assert ds.frame["id"].is_unique
    counts = ds.frame.groupby("task").size().to_dict()
    assert counts == {f"asap_{s}": n for s, n in SET_COUNTS.items()}
    assert set(ds.frame["split"]) == {"train", "test"}
    assert ds.problems == []


def test_score_ranges_and_distribution(shared_data):
    ds = read_asap(shared_data / "asap_sas", sets=[1, 10])
    assert ds.tasks["asap_1"].labels == ("0", "1", "2", "3")
    assert ds.tasks["asap_1"].ordinal
    assert ds.tasks["asap_10"].labels == ("0", "1", "2")
    dist = ds.summary()["tasks"]["asap_1"]["label_distribution"]
    assert dist == {"0": 380, "1": 429, "2": 524, "3": 339}


def test_unlabelled_private_leaderboard(shared_data):
    ds = load_dataset("asap_sas", sets=list(SCIENCE_SETS), include_unlabelled=True)
    unl = ds.split("unlabelled")
    assert len(unl) > 0 and unl.frame["y"].isna().all()
    assert set(unl.frame["task"]) == {f"asap_{s}" for s in SCIENCE_SETS}
    full = load_dataset(shared_data / "asap_sas" / "private_leaderboard.tsv")
    assert len(full) == 5_100


def test_digest_is_stable_and_content_sensitive(shared_data):
    a = read_asap(shared_data / "asap_sas", sets=[2])
    b = read_asap(shared_data / "asap_sas", sets=[2])
    assert a.digest() == b.digest()
    b.frame.loc[0, "text"] = b.frame.loc[0, "text"] + " changed"
    assert a.digest() != b.digest()
    shuffled = a.subset(a.frame.index >= 0)
    shuffled.frame = shuffled.frame.sample(frac=1.0, random_state=1)
    assert shuffled.digest() == a.digest()


def test_prompts_carry_each_sets_question_and_key(shared_data, tmp_path):
    ds = read_asap(shared_data / "asap_sas", sets=[1, 2], include_unlabelled=True, prompts=True)
    f = ds.frame
    one = f[f["task"] == "asap_1"]
    assert one["question"].nunique() == 1 and "replicate the experiment" in one["question"].iloc[0]
    assert one["reference"].iloc[0].count(";") >= 2  # the key elements, one per line in the file
    two = f[f["task"] == "asap_2"]
    assert (two["split"] == "unlabelled").any() and two["question"].str.contains("conclusion").all()
    assert two["reference"].isna().all()  # set 2 has no key file
    assert read_asap(shared_data / "asap_sas", sets=[1]).frame["question"].isna().all()  # off by default

    # A copy of the data without the descriptions: the missing file is named.
    shutil.copytree(shared_data / "asap_sas" / "gold_train_test_split", tmp_path / "gold_train_test_split")
    with pytest.raises(DataError, match=r"essay_1_description.txt: missing"):
        read_asap(tmp_path, sets=[1], prompts=True)


def test_question_aware_teacher_tokenizer_keeps_the_answer():
    from raykd.inputs import model_input
    from raykd.teacher.config import ModelConfig
    from raykd.teacher.model import build_tokenizer

    tok = build_tokenizer(ModelConfig(include_question=True, max_length=16))
    text = model_input("the answer is photosynthesis", "long prompt " * 50, None)
    ids = tok(text, truncation=True, max_length=16)["input_ids"]
    assert "photosynthesis" in tok.decode(ids)


def test_second_rater_agreement_hand_computed_and_on_the_shared_files(shared_data, tmp_path):
    from sklearn.metrics import cohen_kappa_score

    from raykd.data.asap import second_rater_agreement
    from raykd.data.config import DataConfig
    from raykd.data.preparation import human_agreement

    gold = tmp_path / "asap" / "gold_train_test_split"
    gold.mkdir(parents=True)
    # raters agree on 1 and 2, disagree by one step on 3 and by three on 4; row 5 has no second score
    (gold / "1_GOLD_train.csv").write_text("Id,EssayText,Score1,Score2\n1,a,0,0\n2,b,3,3\n3,c,1,2\n4,d,3,0\n"
                                           "5,e,2,\n")
    got = second_rater_agreement(tmp_path / "asap", ["1", "2", "3", "5"])
    # QWK = 1 - sum w O / sum w E, w = (i-j)^2 / 9: O has one (1,2) pair; E from marginals [1,1,0,1] x [1,0,1,1]
    observed = 1 / 9
    expected = sum(((i - j) ** 2 / 9) * a * b / 3 for i, a in enumerate([1, 1, 0, 1]) for j, b in
                   enumerate([1, 0, 1, 1]))
    assert got == {"asap_1": pytest.approx(1 - observed / expected)}
    assert got["asap_1"] == pytest.approx(cohen_kappa_score([0, 3, 1], [0, 3, 2], weights="quadratic",
                                                            labels=[0, 1, 2, 3]))
    assert second_rater_agreement(tmp_path / "asap", ["5"]) == {}  # nobody scored twice

    ds = read_asap(shared_data / "asap_sas", sets=[1])
    whole = human_agreement(DataConfig(path="asap_sas", options={"sets": [1]}), ds.frame["id"].tolist())
    assert whole["asap_1"] == pytest.approx(0.94, abs=0.01)  # Score1 vs Score2 over all of set 1


def test_no_second_rater_where_the_data_has_none_or_is_not_here(tmp_path):
    from raykd.data.config import DataConfig
    from raykd.data.preparation import human_agreement

    (tmp_path / "scores.csv").write_text("id,task,text,label\n1,t,a,0\n2,t,b,1\n")
    assert human_agreement(DataConfig(path=str(tmp_path / "scores.csv")), ["1", "2"]) == {}
    assert human_agreement(DataConfig(path=str(tmp_path / "gone")), ["1"]) == {}
