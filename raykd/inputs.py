"""What a model reads: one input format for teachers, students and baselines.

    include_question off, or no question/reference:   <response>
    include_question on:                               Question: <question>
                                                       Reference: <reference answers>
                                                       Answer: <response>

Question-aware models (SemEval-style: one model for many questions) read the response against the question
and its reference answers, so they can score questions they never saw.

With `overlap` (students), the input starts with three tokens that summarise how the answer's content words
meet the reference answers and the question, bucketed in fifths (0: under 20%, ..., 4: 80% or more):

    xxrecall<b>     share of a reference answer's content words found in the answer (best reference)
    xxprecision<b>  share of the answer's content words found in some reference answer
    xxqcopy<b>      share of the answer's content words found in the question (restating it earns nothing)

A word-level student learns the words of the questions it saw; these tokens carry what transfers to a
question it never saw: how much of the expected answer is there.

With `pair` (the pair student, raykd.students.pair), the response comes first and the reference answers (else
the question) after a separator token, so the student can pool each side apart and compare them:

    [overlap tokens] <response> <sep> <reference answers, one line each joined by spaces>
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_WORD = re.compile(r"[a-z0-9]+")
SEP = "<sep>"  # between the response and what it is compared with (pair inputs); one token in every vocabulary


def content_words(text: str | None) -> set[str]:
    """Lower-cased words of three letters or more, not stop words (scikit-learn's English list), a plural `s`
    dropped."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    words = (w for w in _WORD.findall((text or "").lower()) if len(w) > 2 and w not in ENGLISH_STOP_WORDS)
    return {w[:-1] if len(w) > 4 and w.endswith("s") and not w.endswith("ss") else w for w in words}


def _bucket(share: float) -> int:
    return min(4, int(share * 5))


def overlap_shares(text: str, question: str | None, reference: str | None) -> tuple[float, float, float]:
    """How an answer's content words meet its reference answers and question: (recall of the best reference,
    precision against all references, share copied from the question), each in [0, 1]."""
    answer = content_words(text)
    refs = [content_words(r) for r in (reference or "").split("\n") if r.strip()]
    refs = [r for r in refs if r]
    recall = max((len(answer & r) / len(r) for r in refs), default=0.0)
    every_ref = set().union(*refs) if refs else set()
    precision = len(answer & every_ref) / len(answer) if answer else 0.0
    qcopy = len(answer & content_words(question)) / len(answer) if answer else 0.0
    return recall, precision, qcopy


def overlap_tokens(text: str, question: str | None, reference: str | None) -> str:
    """The three overlap tokens of one answer (see the module docstring)."""
    recall, precision, qcopy = overlap_shares(text, question, reference)
    return f"xxrecall{_bucket(recall)} xxprecision{_bucket(precision)} xxqcopy{_bucket(qcopy)}"


def model_input(text: str, question: str | None, reference: str | None) -> str:
    if not (question or reference):
        return text
    return f"Question: {question or ''}\nReference: {reference or ''}\nAnswer: {text}"


def pair_input(text: str, question: str | None, reference: str | None) -> str:
    # A separator typed into a response must not move where the reference side starts.
    other = " ".join(line.strip() for line in (reference or question or "").split("\n") if line.strip())
    return f"{text.replace(SEP, ' ')} {SEP} {other.replace(SEP, ' ')}"


def model_inputs(texts: Sequence[str], questions: Sequence[str | None] | None = None,
                 references: Sequence[str | None] | None = None, include_question: bool = False,
                 overlap: bool = False, pair: bool = False) -> list[str]:
    """Each response as its model reads it (see the module docstring; `pair` takes precedence over
    `include_question`)."""
    if not include_question and not overlap and not pair:
        return list(texts)
    questions = questions if questions is not None else [None] * len(texts)
    references = references if references is not None else [None] * len(texts)
    out = []
    for t, q, r in zip(texts, questions, references, strict=True):
        body = pair_input(t, q, r) if pair else model_input(t, q, r) if include_question else t
        out.append(f"{overlap_tokens(t, q, r)} {body}" if overlap else body)
    return out


@dataclass(frozen=True)
class InputFormat:
    """How a student reads a response (saved in its manifest; `pair` follows from the architecture)."""

    include_question: bool = False
    overlap: bool = False
    pair: bool = False

    def __call__(self, texts: Sequence[str], questions: Sequence[str | None] | None = None,
                 references: Sequence[str | None] | None = None) -> list[str]:
        return model_inputs(texts, questions, references, self.include_question, self.overlap, self.pair)
