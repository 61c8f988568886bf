"""The classical baseline: TF-IDF features and logistic regression (scikit-learn), one model per task."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline

from raykd.data.dataset import MULTICLASS, TaskSpec
from raykd.evaluation import evaluate
from raykd.inputs import model_inputs


def fit_tfidf(train: pd.DataFrame, spec: TaskSpec, include_question: bool = False) -> object:
    texts = _texts(train, include_question)
    y = np.asarray(train["y"].tolist())
    clf = LogisticRegression(max_iter=2000, C=4.0)
    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                          clf if spec.kind == MULTICLASS else OneVsRestClassifier(clf))
    model.fit(texts, y)
    return model


def score_tfidf(model: object, test: pd.DataFrame, spec: TaskSpec, include_question: bool = False) -> dict[str, float]:
    texts = _texts(test, include_question)
    y = np.asarray(test["y"].tolist())
    proba = model.predict_proba(texts)
    if spec.kind == MULTICLASS:
        # Columns follow the classes seen in training; place them at their label index.
        full = np.zeros((len(test), spec.num_outputs))
        full[:, model.classes_.astype(int)] = proba
        proba = full
    return evaluate(proba, y, spec)


def _texts(frame: pd.DataFrame, include_question: bool) -> list[str]:
    return model_inputs(frame["text"].tolist(), frame["question"].tolist(), frame["reference"].tolist(),
                        include_question)
