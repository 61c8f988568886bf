"""The stacked teacher's base learners: each turns one task's responses into a few features for the meta-model.

    learner           fitted on                          features of a response
    lexical           word 1-2 and character 2-5 grams   log p(score) of a logistic model on their TF-IDF   (K)
    text              nothing                            log words, log characters, distinct-word share, and
                                                         the overlap shares with reference and question (6)
    embedding:<rep>   the training responses' states     log p(score) of a logistic model on the standardised
                                                         frozen states of representation <rep>               (K)
    neighbours:<rep>  the training responses' states     per score s: mean cosine of the k nearest training
                                                         responses scored s                                  (K)
    prompt:<rep>      nothing                            cosine to the question; best cosine to a reference
                                                         answer (0 where the data has none)                  (2)
    pair:<rep>        the training responses' states     log p(score) of a logistic model on |a - r| and a * r,
                      and their references'              a the answer's state and r its closest reference
                                                         answer's (else the question's): how an answer meets
                                                         its reference, which carries to new questions       (K)

K: the task's scores (multi-class) or labels (multi-label: one-vs-rest models, log p(label) features, and
neighbours among each label's positive responses). A learner is fitted on some responses and describes any:
cross-fitting (raykd.stack.fit) fits it on k-1 folds to describe the k-th, so the meta-model learns from
features of responses the learner never saw, and `neighbours` never finds a response itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from raykd.data.dataset import MULTICLASS, TaskSpec
from raykd.inputs import overlap_shares
from raykd.stack.config import StackConfig

FLOOR = 1e-4  # log-probability features are clipped here: a learner's certainty is not worth more than this


@dataclass
class Rows:
    """Responses as the learners read them: texts, and per representation key their L2-normalised states, their
    two prompt similarities, and the state of the reference answer closest to them (else of the question; 0
    where the data has neither)."""

    text: np.ndarray  # object array of str
    question: np.ndarray  # object array of str | None
    reference: np.ndarray
    vectors: dict[str, np.ndarray]
    prompt: dict[str, np.ndarray]
    matched: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.text)

    def take(self, idx: np.ndarray) -> Rows:
        return Rows(self.text[idx], self.question[idx], self.reference[idx],
                    {k: v[idx] for k, v in self.vectors.items()}, {k: v[idx] for k, v in self.prompt.items()},
                    {k: v[idx] for k, v in self.matched.items()})


Lookup = Callable[[str, list[str]], np.ndarray]  # (representation key, strings) -> their states


def build_rows(texts: list[str], questions: list[str | None], references: list[str | None], keys: list[str],
               lookup: Lookup) -> Rows:
    """`Rows` for responses, their states and prompt similarities read through `lookup` (the job: the
    representation cache; a scorer: its encoders). Reference answers are one per line."""
    n = len(texts)
    questions = [q if isinstance(q, str) and q else None for q in questions]  # missing: None, NaN or ""
    references = [r if isinstance(r, str) and r else None for r in references]
    vectors, prompt, matched = {}, {}, {}
    distinct_q = sorted({q for q in questions if q})
    lines = [[x.strip() for x in r.split("\n") if x.strip()] if r else [] for r in references]
    distinct_r = sorted({x for row in lines for x in row})
    for key in keys:
        v = normalise(lookup(key, list(texts)))
        vectors[key] = v
        sims = np.zeros((n, 2), dtype=np.float32)
        best = np.zeros_like(v)
        qv = dict(zip(distinct_q, normalise(lookup(key, distinct_q)), strict=True)) if distinct_q else {}
        rv = dict(zip(distinct_r, normalise(lookup(key, distinct_r)), strict=True)) if distinct_r else {}
        for i, (q, row) in enumerate(zip(questions, lines, strict=True)):
            if q:
                sims[i, 0] = float(v[i] @ qv[q])
                best[i] = qv[q]
            if row:
                cosines = [float(v[i] @ rv[x]) for x in row]
                sims[i, 1] = max(cosines)
                best[i] = rv[row[int(np.argmax(cosines))]]
        prompt[key], matched[key] = sims, best
    return Rows(np.asarray(texts, dtype=object), np.asarray(questions, dtype=object),
                np.asarray(references, dtype=object), vectors, prompt, matched)


def normalise(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norms > 0, norms, 1.0)


# ------------------------------------------------------------------------------------------ models
class Prior:
    """Stands in for a classifier when the responses it is fitted on carry one score only: the observed shares."""

    def __init__(self, spec: TaskSpec, y: np.ndarray):
        self.spec = spec
        counts = np.bincount(y, minlength=spec.num_outputs) if spec.kind == MULTICLASS else y.sum(0)
        self.p = counts / max(1, len(y))

    def predict_proba(self, x: Any) -> np.ndarray:
        return np.repeat(self.p[None, :], x.shape[0], axis=0)


def classifier(spec: TaskSpec, c: float, scale: bool = False) -> Any:
    """A (standardising) multinomial logistic model, or one per label for a multi-label task."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model: Any = LogisticRegression(C=c, max_iter=3000)
    if spec.kind != MULTICLASS:
        model = OneVsRestClassifier(model)
    return make_pipeline(StandardScaler(), model) if scale else model


def fit_classifier(spec: TaskSpec, c: float, x: Any, y: np.ndarray, scale: bool = False) -> Any:
    if spec.kind == MULTICLASS and len(np.unique(y)) < 2:
        return Prior(spec, y)
    if spec.kind != MULTICLASS and (y.min(0) == y.max(0)).all():
        return Prior(spec, y)
    return classifier(spec, c, scale).fit(x, y)


def probabilities(model: Any, spec: TaskSpec, x: Any) -> np.ndarray:
    """(rows, K) probabilities over every score of the task (0 for a score the model never saw)."""
    p = model.predict_proba(x)
    if spec.kind != MULTICLASS or isinstance(model, Prior):
        return np.asarray(p, dtype=np.float64)
    classes = model.classes_ if hasattr(model, "classes_") else model[-1].classes_
    full = np.zeros((p.shape[0], spec.num_outputs))
    full[:, np.asarray(classes, dtype=np.int64)] = p
    return full


def log_features(p: np.ndarray) -> np.ndarray:
    return np.log(np.clip(p, FLOOR, 1.0))


def one_hot(spec: TaskSpec, y: np.ndarray) -> np.ndarray:
    """(rows, K) membership of each response in each score (multi-class) or label (multi-label)."""
    if spec.kind == MULTICLASS:
        return np.eye(spec.num_outputs, dtype=bool)[y]
    return np.asarray(y, dtype=bool)


# ------------------------------------------------------------------------------------------ learners
class Learner:
    """Fitted on some responses (`fit`), describes any (`features`)."""

    name = ""

    def __init__(self, spec: TaskSpec):
        self.spec = spec

    def fit(self, rows: Rows, y: np.ndarray) -> Learner:
        return self

    def features(self, rows: Rows) -> np.ndarray:
        raise NotImplementedError

    @property
    def coefficients(self) -> int:
        """How many fitted numbers the learner keeps (its share of the teacher's parameter count)."""
        return 0


class Lexical(Learner):
    name = "lexical"

    def __init__(self, spec: TaskSpec, c: float):
        super().__init__(spec)
        self.c = c

    def fit(self, rows: Rows, y: np.ndarray) -> Lexical:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import FeatureUnion

        min_df = 2 if len(rows) >= 50 else 1  # a tiny task keeps every n-gram it has
        self.vectorizer = FeatureUnion([
            ("words", TfidfVectorizer(ngram_range=(1, 2), min_df=min_df, sublinear_tf=True)),
            ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=min_df, sublinear_tf=True))])
        x = self.vectorizer.fit_transform(list(rows.text))
        self.model = fit_classifier(self.spec, self.c, x, y)
        return self

    def features(self, rows: Rows) -> np.ndarray:
        return log_features(probabilities(self.model, self.spec, self.vectorizer.transform(list(rows.text))))

    @property
    def coefficients(self) -> int:
        return _coefficients(self.model)


class Text(Learner):
    name = "text"

    def features(self, rows: Rows) -> np.ndarray:
        out = np.zeros((len(rows), 6))
        for i, (t, q, r) in enumerate(zip(rows.text, rows.question, rows.reference, strict=True)):
            words = t.split()
            out[i, :3] = (math.log1p(len(words)), math.log1p(len(t)),
                          len({w.lower() for w in words}) / max(1, len(words)))
            out[i, 3:] = overlap_shares(t, q, r)
        return out


class Embedding(Learner):
    def __init__(self, spec: TaskSpec, key: str, c: float):
        super().__init__(spec)
        self.key, self.c, self.name = key, c, f"embedding:{key}"

    def fit(self, rows: Rows, y: np.ndarray) -> Embedding:
        self.model = fit_classifier(self.spec, self.c, rows.vectors[self.key], y, scale=True)
        return self

    def features(self, rows: Rows) -> np.ndarray:
        return log_features(probabilities(self.model, self.spec, rows.vectors[self.key]))

    @property
    def coefficients(self) -> int:
        return _coefficients(self.model)


class Neighbours(Learner):
    CHUNK = 4096  # rows of the similarity matrix at a time

    def __init__(self, spec: TaskSpec, key: str, k: int):
        super().__init__(spec)
        self.key, self.k, self.name = key, k, f"neighbours:{key}"

    def fit(self, rows: Rows, y: np.ndarray) -> Neighbours:
        # float16 halves what the saved model keeps; cosines lose nothing that matters at this precision
        self.bank = rows.vectors[self.key].astype(np.float16)
        self.members = one_hot(self.spec, y)
        return self

    def features(self, rows: Rows) -> np.ndarray:
        v = rows.vectors[self.key]
        out = np.zeros((len(v), self.members.shape[1]), dtype=np.float64)
        bank = self.bank.astype(np.float32)
        for start in range(0, len(v), self.CHUNK):
            sims = v[start:start + self.CHUNK] @ bank.T
            for c in range(self.members.shape[1]):
                col = sims[:, self.members[:, c]]
                if col.shape[1]:
                    k = min(self.k, col.shape[1])
                    out[start:start + len(sims), c] = np.partition(col, col.shape[1] - k, axis=1)[:, -k:].mean(1)
        return out

    @property
    def coefficients(self) -> int:
        return int(self.bank.size)


class Pair(Learner):
    def __init__(self, spec: TaskSpec, key: str, c: float):
        super().__init__(spec)
        self.key, self.c, self.name = key, c, f"pair:{key}"

    def inputs(self, rows: Rows) -> np.ndarray:
        a, r = rows.vectors[self.key], rows.matched[self.key]
        return np.hstack([np.abs(a - r), a * r])

    def fit(self, rows: Rows, y: np.ndarray) -> Pair:
        self.model = fit_classifier(self.spec, self.c, self.inputs(rows), y, scale=True)
        return self

    def features(self, rows: Rows) -> np.ndarray:
        return log_features(probabilities(self.model, self.spec, self.inputs(rows)))

    @property
    def coefficients(self) -> int:
        return _coefficients(self.model)


class Prompt(Learner):
    def __init__(self, spec: TaskSpec, key: str):
        super().__init__(spec)
        self.key, self.name = key, f"prompt:{key}"

    def features(self, rows: Rows) -> np.ndarray:
        return rows.prompt[self.key].astype(np.float64)


def _coefficients(model: Any) -> int:
    if isinstance(model, Prior):
        return int(model.p.size)
    final = model[-1] if hasattr(model, "steps") else model
    estimators = getattr(final, "estimators_", [final])
    return int(sum(e.coef_.size + e.intercept_.size for e in estimators if hasattr(e, "coef_")))


def candidates(cfg: StackConfig, keys: list[str]) -> list[str]:
    """The learner names a stack with `cfg` and representations `keys` considers, in a fixed order."""
    out = []
    for group in cfg.groups:
        if group in ("lexical", "text"):
            out.append(group)
        else:
            out.extend(f"{group}:{k}" for k in keys)
    return out


def make_learner(name: str, spec: TaskSpec, cfg: StackConfig) -> Learner:
    group, _, key = name.partition(":")
    if group == "lexical":
        return Lexical(spec, cfg.lexical_c)
    if group == "text":
        return Text(spec)
    if group == "embedding":
        return Embedding(spec, key, cfg.embedding_c)
    if group == "neighbours":
        return Neighbours(spec, key, cfg.neighbours)
    if group == "prompt":
        return Prompt(spec, key)
    if group == "pair":
        return Pair(spec, key, cfg.embedding_c)
    raise ValueError(f"unknown learner {name!r}")

