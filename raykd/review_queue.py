"""Which unscored responses a person should grade first (`raykd review-queue`).

A person's score helps the next model most on a response the model is unsure of and unlike the ones already
picked. Per response, with p its calibrated probabilities (raykd.confidence):

    | task kind          | uncertainty u                                    | why                            |
    |--------------------|--------------------------------------------------|--------------------------------|
    | ordinal scores     | sum_k p_k (k - E[k])^2 (variance of the score)   | QWK charges squared distance   |
    | categories         | 1 - max_k p_k                                    | chance the top class is wrong  |
    | multi-label        | mean_l 2 min(p_l, 1 - p_l)                       | per criterion, 1 at p = 0.5    |
    | continuous scores  | sd^2 (the predicted spread, calibrated)          | squared error, as for ordinal  |

u is turned into its rank within the task (0..1], so tasks of different kinds share one queue. A response unlike
any other is a poor use of a person's time even when the model is unsure of it: what the next model learns from
it reaches few other responses. So the rank is weighted by how typical the response is of its task (information
density, Settles and Craven 2008):

    density_i = mean cosine similarity of x_i to its 20 nearest responses of the same task
    priority_i = rank(u_i) * rank(density_i) ** density

where x is the response's TF-IDF vector (word 1-2 grams, fitted per task, reduced to 50 dimensions by truncated
SVD). Responses are then picked greedily (maximal marginal relevance): the next is the one with the largest

    priority_i - diversity * max_{j picked, same task} cos(t_i, t_j)

with t the full TF-IDF vectors (fitted on all the responses queued), so near-duplicates of a response already
queued wait. `density` 0 and `diversity` 0 is pure uncertainty sampling. The defaults (density 1, diversity 0) are
what a comparison of strategies measured best, with bench/review_sim.py's protocol over ASAP-SAS sets 1, 2, 5, 6,
10 and 3 seeds: students retrained on 300 graded picks gained, over 300 random picks, +0.032 QWK with density
weighting (95% t interval -0.034 to +0.098), -0.020 with diversity 0.5 alone and -0.027 with pure uncertainty.
Single runs are noisy (small sets, students that sometimes stay at the majority score); the README reports
bench/review_sim.py's figures for these defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from raykd.data.dataset import CONTINUOUS, MULTICLASS, ScoringDataset, TaskSpec


def uncertainty(probs: np.ndarray, spec: TaskSpec) -> np.ndarray:
    """Per row of `probs` (rows, labels): the uncertainty in the table above."""
    p = np.asarray(probs, dtype=np.float64)
    if spec.kind == CONTINUOUS:
        return p[:, 1] ** 2
    if spec.kind != MULTICLASS:
        return (2 * np.minimum(p, 1 - p)).mean(axis=1)
    if spec.ordinal:
        k = np.arange(p.shape[1], dtype=np.float64)
        mean = p @ k
        return (p * (k[None, :] - mean[:, None]) ** 2).sum(axis=1)
    return 1 - p.max(axis=1)


@dataclass(frozen=True)
class QueueEntry:
    rank: int
    id: str
    task: str
    uncertainty: float
    density: float  # mean similarity to its nearest responses of the task
    priority: float  # rank(u) * rank(density)^density, less the diversity penalty when it was picked


def order_queue(ids: list[str], tasks: list[str], texts: list[str], probs: list[np.ndarray],
                specs: dict[str, TaskSpec], count: int | None = None, density: float = 1.0,
                diversity: float = 0.0) -> list[QueueEntry]:
    """The first `count` responses (all by default) in the order a person should grade them (see module doc)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    n = len(ids)
    if n == 0:
        return []
    task_arr = np.asarray(tasks, dtype=object)
    u = np.zeros(n)
    typical = np.zeros(n)
    gain = np.zeros(n)
    for task in dict.fromkeys(tasks):
        rows = np.flatnonzero(task_arr == task)
        u[rows] = uncertainty(np.stack([probs[i] for i in rows]), specs[task])
        typical[rows] = text_density([texts[i] for i in rows])
        gain[rows] = rankdata(u[rows]) / len(rows) * (rankdata(typical[rows]) / len(rows)) ** density
    vectors = None
    if diversity:
        try:  # rows L2-normed
            vectors = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True).fit_transform(texts)
        except ValueError:  # no word in any response: nothing to tell near-duplicates by
            vectors = None
    nearest = np.zeros(n)  # each response's largest similarity to a picked one of its task
    left = np.ones(n, dtype=bool)
    out: list[QueueEntry] = []
    for rank in range(1, min(n, count or n) + 1):
        priority = np.where(left, gain - diversity * nearest, -np.inf)
        i = int(np.argmax(priority))
        out.append(QueueEntry(rank, ids[i], tasks[i], float(u[i]), float(typical[i]), float(priority[i])))
        left[i] = False
        if vectors is not None:
            same = task_arr == task_arr[i]
            sims = (vectors @ vectors[i].T).toarray().ravel()
            nearest = np.where(same, np.maximum(nearest, sims), nearest)
    return out


def text_density(texts: list[str], neighbours: int = 20, dims: int = 50) -> np.ndarray:
    """Per text, its mean cosine similarity to its `neighbours` nearest other texts (TF-IDF word 1-2 grams,
    truncated SVD to `dims`); all 1 when there is no other text."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.neighbors import NearestNeighbors
    from sklearn.preprocessing import normalize

    n = len(texts)
    k = min(neighbours, n - 1)
    if k < 1:
        return np.ones(n)
    try:
        x = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit_transform(texts)
    except ValueError:  # no word in any text (all empty or punctuation): nothing tells them apart
        return np.ones(n)
    d = min(dims, x.shape[1] - 1, n - 1)
    z = normalize(TruncatedSVD(d, random_state=0).fit_transform(x)) if d >= 2 else x
    # brute-force kNN computes distances in chunks, so a large queue never holds an n x n matrix
    dist, _ = NearestNeighbors(n_neighbors=k + 1, metric="cosine", algorithm="brute").fit(z).kneighbors(z)
    return 1 - dist[:, 1:].mean(axis=1)  # column 0 is the text itself (or an identical one: same distance)


def queue_frame(entries: list[QueueEntry], scores: pd.DataFrame) -> pd.DataFrame:
    """The queue as a table: rank, id, task, uncertainty, priority and the model's prediction, confidence and
    score set for each response (no text: the ids find it)."""
    queue = pd.DataFrame([e.__dict__ for e in entries],
                         columns=["rank", "id", "task", "uncertainty", "density", "priority"])
    cols = [c for c in ("id", "task", "prediction", "confidence", "score_set") if c in scores.columns]
    return queue.merge(scores[cols], on=["id", "task"], how="left")


def review_queue(model: str, output: str, input_path: str | None = None, count: int | None = None,
                 density: float = 1.0, diversity: float = 0.0, tracking_uri: str | None = None,
                 skip_invalid: bool = False) -> pd.DataFrame:
    """`raykd review-queue`: score the responses of `input_path` (default: the unscored responses of the data
    the model learnt from, less those already corrected) and write the queue to `output` (atomically)."""
    from raykd.errors import DataError
    from raykd.io import write_table_atomic
    from raykd.pipeline import say
    from raykd.predict.rows import read_for_scoring, score_dataset
    from raykd.scoring import judged, load_scorer, resolve_model

    folder = resolve_model(model, tracking_uri)
    scorer = load_scorer(str(folder))
    if input_path:
        ds = read_for_scoring(input_path, scorer.layout, skip_invalid)
        source = input_path
    else:
        ds, source = _unscored(folder, scorer.layout.names)
    if not len(ds):
        raise DataError(source, "no unscored responses to queue")
    ds = ScoringDataset(ds.name, ds.tasks, ds.frame.reset_index(drop=True), ds.problems)
    scores, probs = score_dataset(scorer, ds)
    f = ds.frame
    calibrated, _ = judged(scorer, f["task"].tolist(), probs)
    entries = order_queue(f["id"].astype(str).tolist(), f["task"].tolist(), f["text"].tolist(), calibrated,
                          {s.name: s for s in scorer.layout.tasks}, count, density, diversity)
    frame = queue_frame(entries, scores.assign(id=scores["id"].astype(str)))
    write_table_atomic(frame, output)
    say("review-queue", f"{len(frame)} of {len(f)} unscored responses from {source} queued in {output}")
    return frame


def _unscored(folder: Path, tasks: list[str]) -> tuple[ScoringDataset, str]:
    """The unscored responses of the data a model learnt from, without those its corrections already scored."""
    import dataclasses

    from raykd.data.preparation import load_unsplit, model_data

    prepared = model_data(folder)
    ds = load_unsplit(dataclasses.replace(prepared.data, include_unlabelled=True))
    f = ds.frame
    return ds.subset((f["split"] == "unlabelled") & f["task"].isin(tasks)), str(prepared.data.path)
