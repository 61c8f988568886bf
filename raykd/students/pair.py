"""The pair student: a small cross-encoder that reads a response against its reference answers.

    input   [overlap tokens] response <sep> reference answers                 (raykd.inputs, `pair`)
    states  one (B)LSTM pass over the whole input (LSTMStudent's embedding and recurrence)
    u       pool(states over the response side: the tokens before <sep>)
    v       pool(states over the reference side: the tokens after <sep>)
    pool    (masked mean + masked max) / 2, as LSTMStudent.encode; an empty side pools to 0
    logits  W [u, v, |u - v|, u * v] + b

The comparison features are those of the teacher's `pair` head (Sentence-BERT); one pass over both sides lets
each side's states see the other. A student that reads "question, reference, answer" as one sequence learns
the words of the questions it trained on; this one learns how a response meets a reference, which is what
carries to a question it never saw (bench/semeval_lqo.py measures it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from raykd.students.lstm import LSTMSpec, LSTMStudent, pool
from raykd.students.vocab import SEP_ID


@dataclass
class PairSpec(LSTMSpec):
    pass


def side_masks(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(response side, reference side) boolean masks of right-padded ids: before the first <sep>, and between
    the first and a second one (the separators and padding are in neither)."""
    is_sep = ids == SEP_ID
    segment = is_sep.long().cumsum(1)
    real = (ids != 0) & ~is_sep
    return real & (segment == 0), real & (segment == 1)


class PairStudent(LSTMStudent):
    def __init__(self, spec: PairSpec):
        super().__init__(spec)
        width = spec.hidden * (2 if spec.bidirectional else 1)
        self.head = nn.Linear(4 * width, spec.num_outputs)

    def features(self, ids: torch.Tensor) -> torch.Tensor:
        states = self.states(ids)
        response, reference = side_masks(ids)
        u, v = pool(states, response), pool(states, reference)
        return torch.cat([u, v, (u - v).abs(), u * v], dim=-1)

    def forward(self, ids: torch.Tensor, task_ids: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return {"logits": self.head(self.dropout(self.features(ids)))}
