import pytest

from raykd.data import make_splits, read_asap, read_semeval


def test_predefined_test_kept_and_validation_stratified(shared_data):
    ds = read_asap(shared_data / "asap_sas", sets=[1, 5])
    split = make_splits(ds, validation=0.1, seed=3)
    orig_test = set(ds.frame.loc[ds.frame["split"] == "test", "id"])
    assert set(split.frame.loc[split.frame["split"] == "test", "id"]) == orig_test
    for task in ("asap_1", "asap_5"):
        rows = split.frame[split.frame["task"] == task]
        train = rows[rows["split"] == "train"]["y"].value_counts(normalize=True)
        val = rows[rows["split"] == "validation"]["y"].value_counts(normalize=True)
        assert (abs(train - val) < 0.03).all()  # stratified: class shares agree
        n_val = (rows["split"] == "validation").sum()
        assert n_val == round(0.1 * (rows["split"] != "test").sum())


def test_deterministic_and_seed_dependent(shared_data):
    ds = read_asap(shared_data / "asap_sas", sets=[2])
    a, b, c = make_splits(ds, seed=0), make_splits(ds, seed=0), make_splits(ds, seed=1)
    assert a.frame["split"].tolist() == b.frame["split"].tolist()
    assert a.frame["split"].tolist() != c.frame["split"].tolist()
    assert a.digest() == b.digest()


def test_three_way_split_without_source_test(shared_data):
    ds = read_semeval(shared_data / "semeval2013_task7", corpus="beetle", ways=5)
    split = make_splits(ds, validation=0.1, test=0.2, seed=0)
    counts = split.frame["split"].value_counts()
    assert counts["test"] == round(0.2 * len(ds))
    assert counts["validation"] == round(0.1 * (len(ds) - counts["test"]) / 0.8)


def test_bad_fractions():
    with pytest.raises(ValueError, match="split fractions"):
        make_splits(None, validation=0.6, test=0.5)  # type: ignore[arg-type]
