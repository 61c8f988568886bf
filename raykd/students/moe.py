"""The multi-task Mixture-of-Experts student: one model for many rubric tasks.

    ids -> shared encoder (embedding + BiLSTM, pooled) -> h
    gate = softmax(W_g [h ; task_embedding])              per-response routing over N experts
    z = sum_i gate_i * expert_i(h)                        experts: small MLPs
    logits = head_task(z)                                 one head per task (a slice of one flat output)

Trained with hard loss + kd_weight * KD loss + load_balance_weight * balance loss (raykd.distill).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from raykd.students.lstm import LSTMSpec, LSTMStudent, StudentSpec


@dataclass
class MoESpec(StudentSpec):
    num_tasks: int
    num_experts: int
    expert_hidden: int
    task_embed_dim: int


class MoEStudent(nn.Module):
    def __init__(self, spec: MoESpec):
        super().__init__()
        self.spec = spec
        self.encoder = LSTMStudent(LSTMSpec(vocab_size=spec.vocab_size, num_outputs=1, embed_dim=spec.embed_dim,
                                            hidden=spec.hidden, dropout=spec.dropout, layers=1, bidirectional=True))
        del self.encoder.head  # the encoder part only
        width = 2 * spec.hidden
        self.task_embed = nn.Embedding(spec.num_tasks, spec.task_embed_dim)
        self.gate = nn.Linear(width + spec.task_embed_dim, spec.num_experts)
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(width, spec.expert_hidden), nn.GELU(), nn.Dropout(spec.dropout),
                          nn.Linear(spec.expert_hidden, width))
            for _ in range(spec.num_experts)
        )
        self.dropout = nn.Dropout(spec.dropout)
        self.head = nn.Linear(width, spec.num_outputs)

    @property
    def token_embedding(self) -> nn.Embedding:
        return self.encoder.embed

    def forward(self, ids: torch.Tensor, task_ids: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if task_ids is None:
            raise ValueError("the MoE student needs each response's task id")
        h = self.encoder.encode(ids)
        gate = torch.softmax(self.gate(torch.cat([h, self.task_embed(task_ids)], dim=-1)), dim=-1)
        experts = torch.stack([e(h) for e in self.experts], dim=1)  # (batch, experts, width)
        z = h + (gate.unsqueeze(-1) * experts).sum(1)  # residual keeps the shared signal
        return {"logits": self.head(self.dropout(z)), "gate": gate}
