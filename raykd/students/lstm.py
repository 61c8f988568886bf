"""The LSTM student of arXiv 2312.15842: embedding -> LSTM -> dropout -> dense.

Sized in the paper's 0.02-0.1M-parameter range by the default StudentConfig. The dense layer has one output per
class/label of every task it serves (see raykd.heads.TaskLayout), so one student can also serve
several tasks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class StudentSpec:
    """Sizes every student has (from StudentConfig by field name; saved in its manifest)."""

    vocab_size: int
    num_outputs: int
    embed_dim: int
    hidden: int
    dropout: float


@dataclass
class LSTMSpec(StudentSpec):
    layers: int
    bidirectional: bool


def pool(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(masked mean + masked max) / 2 of (B, T, W) states over the time steps in the (B, T) mask; 0 where the
    mask is empty (a row of real tokens never is: an empty text encodes as one <unk>)."""
    m = mask.unsqueeze(-1).float()
    count = m.sum(1)
    mean = (states * m).sum(1) / count.clamp_min(1.0)
    peak = states.masked_fill(m == 0, -1e4).max(1).values * (count > 0)
    return (mean + peak) / 2


class LSTMStudent(nn.Module):
    def __init__(self, spec: LSTMSpec):
        super().__init__()
        self.spec = spec
        self.embed = nn.Embedding(spec.vocab_size, spec.embed_dim, padding_idx=0)
        self.lstm = nn.LSTM(spec.embed_dim, spec.hidden, num_layers=spec.layers, batch_first=True,
                            bidirectional=spec.bidirectional, dropout=spec.dropout if spec.layers > 1 else 0.0)
        width = spec.hidden * (2 if spec.bidirectional else 1)
        self.dropout = nn.Dropout(spec.dropout)
        self.head = nn.Linear(width, spec.num_outputs)

    @property
    def token_embedding(self) -> nn.Embedding:
        return self.embed

    def states(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T, D*H) LSTM states of right-padded ids, zero past each length. Sequences are packed, so padding
        never enters the recurrence and a response scores the same in any batch."""
        lengths = (ids != 0).sum(1).clamp_min(1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(ids), lengths, batch_first=True, enforce_sorted=False)
        return nn.utils.rnn.pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=ids.shape[1])[0]

    def encode(self, ids: torch.Tensor) -> torch.Tensor:
        """Mean and max pooling of the LSTM states over the real tokens, averaged."""
        return pool(self.states(ids), ids != 0)

    def forward(self, ids: torch.Tensor, task_ids: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return {"logits": self.head(self.dropout(self.encode(ids)))}
