"""`raykd review-queue`: hand-computed uncertainties, density that puts a typical response before an outlier,
diversity that lets a near-duplicate wait, and the command on a saved student."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata

from raykd.cli import main
from raykd.data.dataset import MULTICLASS, MULTILABEL, TaskSpec
from raykd.review_queue import order_queue, text_density, uncertainty

SCORES = TaskSpec("s", MULTICLASS, ("0", "1", "2"), ordinal=True)
CATEGORIES = TaskSpec("c", MULTICLASS, ("a", "b", "c"))
CRITERIA = TaskSpec("m", MULTILABEL, ("x", "y"))


def test_uncertainty_by_task_kind():
    p = np.array([[0.5, 0.0, 0.5], [0.0, 1.0, 0.0], [0.2, 0.6, 0.2]])
    # ordinal: variance of the score; [.5, 0, .5] has mean 1 and variance 1, [.2, .6, .2] variance .4
    assert uncertainty(p, SCORES) == pytest.approx([1.0, 0.0, 0.4])
    assert uncertainty(p, CATEGORIES) == pytest.approx([0.5, 0.0, 0.4])
    # multi-label: mean over criteria of 2 min(p, 1 - p)
    assert uncertainty(np.array([[0.5, 0.9], [0.0, 1.0]]), CRITERIA) == pytest.approx([0.6, 0.0])


def test_diversity_lets_a_near_duplicate_wait():
    texts = ["the cell wall keeps water in", "the cell wall keeps water in", "plants need light to grow food",
             "rocks are made of minerals"]
    probs = [np.array(p) for p in ([0.5, 0.0, 0.5], [0.45, 0.1, 0.45], [0.3, 0.4, 0.3], [0.1, 0.8, 0.1])]
    ids = ["a", "a2", "b", "c"]
    pure = order_queue(ids, ["s"] * 4, texts, probs, {"s": SCORES}, density=0.0, diversity=0.0)
    assert [e.id for e in pure] == ["a", "a2", "b", "c"]  # most uncertain first
    assert [e.uncertainty for e in pure] == pytest.approx([1.0, 0.9, 0.6, 0.2])
    diverse = order_queue(ids, ["s"] * 4, texts, probs, {"s": SCORES}, density=0.0, diversity=0.4)
    assert [e.id for e in diverse] == ["a", "b", "a2", "c"]  # the duplicate waits behind a new response
    assert diverse[2].priority == pytest.approx(0.75 - 0.4)  # its rank 3/4 less 0.4 x its similarity 1
    assert [e.rank for e in order_queue(ids, ["s"] * 4, texts, probs, {"s": SCORES}, count=2)] == [1, 2]


def test_density_puts_a_typical_response_before_an_outlier():
    texts = ["water moves into the cell", "water moves out of the cell", "water moves into the root cell",
             "my dog likes cheese"]
    dense = text_density(texts, neighbours=2)
    assert dense[3] == pytest.approx(0.0, abs=1e-9)  # shares no word with any other response
    assert min(dense[:3]) > 0.2
    assert text_density(["only one"]).tolist() == [1.0] and text_density(["", "?"]).tolist() == [1.0, 1.0]
    # the outlier is the most uncertain, yet a typical response goes first
    probs = [np.array(p) for p in ([0.3, 0.4, 0.3], [0.1, 0.8, 0.1], [0.05, 0.9, 0.05], [0.5, 0.0, 0.5])]
    ids = ["w1", "w2", "w3", "dog"]
    queue = order_queue(ids, ["s"] * 4, texts, probs, {"s": SCORES})
    assert queue[0].id == "w1" and queue[-1].id != "w1"
    assert queue[0].priority == pytest.approx(3 / 4 * (rankdata(dense)[0] / 4))
    assert order_queue(ids, ["s"] * 4, texts, probs, {"s": SCORES}, density=0.0)[0].id == "dog"


def test_similar_responses_of_other_tasks_do_not_penalise_each_other():
    texts = ["same words here"] * 2
    probs = [np.array([0.5, 0.0, 0.5]), np.array([0.5, 0.0, 0.5])]
    queue = order_queue(["p", "q"], ["s", "t"], texts, probs, {"s": SCORES, "t": SCORES}, diversity=1.0)
    assert [e.priority for e in queue] == pytest.approx([1.0, 1.0])


def test_command_on_a_saved_student(asap1_student, tmp_path, capsys):
    path, ds = asap1_student
    f = ds.frame[ds.frame["split"] == "test"].head(60)
    responses = tmp_path / "unscored.csv"
    pd.DataFrame({"id": f["id"], "text": f["text"]}).to_csv(responses, index=False)
    out = tmp_path / "queue.csv"
    assert main(["review-queue", "--model", str(path), "--input", str(responses), "--output", str(out),
                 "--count", "20"]) == 0
    queue = pd.read_csv(out, dtype={"id": str})
    assert list(queue.columns) == ["rank", "id", "task", "uncertainty", "density", "priority", "prediction",
                                   "confidence", "score_set"]
    assert len(queue) == 20 and queue["rank"].tolist() == list(range(1, 21)) and queue["id"].is_unique
    assert set(queue["id"]) <= set(f["id"].astype(str)) and "text" not in queue
    pure = tmp_path / "pure.csv"
    assert main(["review-queue", "--model", str(path), "--input", str(responses), "--output", str(pure),
                 "--density", "0"]) == 0
    all_rows = pd.read_csv(pure, dtype={"id": str})
    assert all_rows["uncertainty"].is_monotonic_decreasing and len(all_rows) == 60
    with pytest.raises(SystemExit):  # a negative weight is a usage error, not a queue
        main(["review-queue", "--model", str(path), "--output", str(pure), "--density", "-1"])
