"""What a model reads: one input format for teachers, students and baselines.

    include_question off, or no question/reference:   <response>
    include_question on:                               Question: <question>
                                                       Reference: <reference answers>
                                                       Answer: <response>

Question-aware models (SemEval-style: one model for many questions) read the response against the question
and its reference answers, so they can score questions they never saw.
"""

from __future__ import annotations

from collections.abc import Sequence


def model_input(text: str, question: str | None, reference: str | None) -> str:
    if not (question or reference):
        return text
    return f"Question: {question or ''}\nReference: {reference or ''}\nAnswer: {text}"


def model_inputs(texts: Sequence[str], questions: Sequence[str | None] | None = None,
                 references: Sequence[str | None] | None = None, include_question: bool = False) -> list[str]:
    """Each response as its model reads it (see the module docstring)."""
    if not include_question:
        return list(texts)
    questions = questions if questions is not None else [None] * len(texts)
    references = references if references is not None else [None] * len(texts)
    return [model_input(t, q, r) for t, q, r in zip(texts, questions, references, strict=True)]
