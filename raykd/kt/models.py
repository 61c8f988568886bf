"""Knowledge-tracing networks: AttentionKT and DKT, the mean of several (the teacher), and the padded batches
they read.

Both read a learner's attempts x_1..x_n (skill s_t, correct c_t) and return, after each attempt t, a logit for
every skill: `mastery[t, s]` = logit P(correct | next question is on skill s, history x_1..x_t). The
next-step prediction is `mastery[t, s_{t+1}]`.

AttentionKT (teacher, in the spirit of SAKT): interaction embeddings (skill x correct, plus the language model's
skill embedding through a learned projection) through an LSTM (order and recency) and a causal Transformer
encoder (looking back over the whole window) give h_t.
The skill logits add a learner-specific evidence term per skill, as in performance-factors analysis:

    mastery[t, s] = <W h_t, k_s> / sqrt(d) + b_s + sum_f a_{s,f} * phi_f(t, s)
    phi = (log1p(right_s), log1p(wrong_s), log1p(attempts since the last one on s),
           sum_r G[s, r] * (right_r - wrong_r) / (1 + attempts_r)       (G: the skill graph),
           recent outcomes on s: e <- g e + (1 - g)(2c - 1) at each attempt on s, g = 0.3 and 0.7)

DKT (the student, and at a larger size a teacher member; Piech et al. 2015): an embedding of (skill, correct),
an LSTM and a linear layer to every skill.

Item-level data (ids are items, with an item-to-skill map): both models read each attempt's skill as above plus
a learned embedding of its item, and predict an item through its skill with an item difficulty (a Rasch term,
as DKT+ and AKT do): next[t] = mastery[t, skill(q_{t+1})] - d(q_{t+1}). Many items with few attempts each then
share what their skill knows; without a map there are no item terms and the models are as above.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from raykd.kt.data import Sequence

EVIDENCE = 6  # features per skill in `evidence`


@dataclass(frozen=True)
class KTIndex:
    """The ids of the sequence files as the models index them: each id's 1-based skill index, and its 1-based
    item index when the ids are items (an item-to-skill map)."""

    skill: dict[int, int]
    item: dict[int, int]
    num_skills: int

    @classmethod
    def of(cls, skill_ids: list[int], item_skill: dict[int, int] | None = None) -> KTIndex:
        skill_index = {s: i + 1 for i, s in enumerate(skill_ids)}
        if not item_skill:
            return cls(skill_index, {}, len(skill_ids))
        items = sorted(item_skill)
        return cls({q: skill_index[item_skill[q]] for q in items}, {q: i + 1 for i, q in enumerate(items)},
                   len(skill_ids))

    @property
    def num_items(self) -> int:
        return len(self.item)

    def __contains__(self, key: object) -> bool:
        return key in self.skill


@dataclass
class Batch:
    """Padded attempts. `skill` holds 1-based skill indices (0 = padding), `item` 1-based item indices on
    item-level data (else None); `mask[b, t]` is True for real attempts."""

    skill: torch.Tensor  # [B, T] long
    correct: torch.Tensor  # [B, T] float
    mask: torch.Tensor  # [B, T] bool
    item: torch.Tensor | None = None  # [B, T] long

    @property
    def targets(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Next-step targets: (skill index of step t+1, its correctness, valid) for t = 0..T-2."""
        return self.skill[:, 1:], self.correct[:, 1:], self.mask[:, 1:]


def make_batch(seqs: list[Sequence], index: KTIndex) -> Batch:
    """Pad sequences; `index` maps each id to its skill (and item) index (an unknown id raises KeyError)."""
    length = max(len(s) for s in seqs)
    skill = np.zeros((len(seqs), length), dtype=np.int64)
    item = np.zeros((len(seqs), length), dtype=np.int64) if index.item else None
    correct = np.zeros((len(seqs), length), dtype=np.float32)
    for i, s in enumerate(seqs):
        ids = [int(k) for k in s.skills]
        skill[i, :len(s)] = [index.skill[k] for k in ids]
        if item is not None:
            item[i, :len(s)] = [index.item[k] for k in ids]
        correct[i, :len(s)] = s.correct
    skill_t = torch.from_numpy(skill)
    return Batch(skill_t, torch.from_numpy(correct), skill_t > 0, None if item is None else torch.from_numpy(item))


def batches(seqs: list[Sequence], batch_size: int, seed: int | None) -> list[list[int]]:
    """Index batches of similar length (little padding); shuffled batch order when `seed` is given."""
    order = np.argsort([len(s) for s in seqs], kind="stable")
    groups = [order[i:i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    if seed is not None:
        np.random.default_rng(seed).shuffle(groups)
    return groups


def predict(model: torch.nn.Module, seqs: list[Sequence], index: KTIndex, batch_size: int = 64,
            mastery: bool = False) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per sequence: next-step probabilities [n-1] and, with `mastery`, every skill's probability [n-1, S]."""
    model.eval()
    nxt: list[np.ndarray] = [np.empty(0)] * len(seqs)
    mas: list[np.ndarray] = [np.empty(0)] * len(seqs)
    with torch.no_grad():
        for group in batches(seqs, batch_size, seed=None):
            b = make_batch([seqs[i] for i in group], index)
            logits, nxt_logits = model.predict_step(b)
            p_next = torch.sigmoid(nxt_logits).numpy()
            p_all = torch.sigmoid(logits[:, :-1]).numpy() if mastery else None
            for row, i in enumerate(group):
                n = len(seqs[i]) - 1
                nxt[i] = p_next[row, :n]
                if p_all is not None:
                    mas[i] = p_all[row, :n].astype(np.float16)
    return nxt, mas


def next_step_logits(mastery: torch.Tensor, batch: Batch, difficulty: nn.Embedding | None = None) -> torch.Tensor:
    """mastery[b, t, s_{t+1}] - d(q_{t+1}) for t = 0..T-2: [B, T-1] (the difficulty term on item-level data)."""
    nxt, _, _ = batch.targets
    out = mastery[:, :-1].gather(-1, (nxt - 1).clamp_min(0).unsqueeze(-1)).squeeze(-1)
    if difficulty is not None and batch.item is not None:
        out = out - difficulty(batch.item[:, 1:]).squeeze(-1)
    return out


class ItemTerms(nn.Module):
    """What a model adds on item-level data: an embedding of each attempt's item (added to its input) and the
    item's difficulty (subtracted from its skill's logit). Both start at zero, so a model begins as its skill-level
    self."""

    def __init__(self, num_items: int, dim: int):
        super().__init__()
        self.embed = nn.Embedding(num_items + 1, dim, padding_idx=0)
        self.difficulty = nn.Embedding(num_items + 1, 1, padding_idx=0)
        nn.init.zeros_(self.embed.weight)
        nn.init.zeros_(self.difficulty.weight)

    def input(self, item: torch.Tensor | None) -> torch.Tensor | float:
        return 0.0 if item is None else self.embed(item)


class KTModel(nn.Module):
    """What every knowledge-tracing network answers: `forward(batch)` gives the mastery logits [B, T, S] after
    each attempt, `predict_step(batch)` those and the next-step logits [B, T-1]."""

    # Set by each network's __init__ (a class-level default would shadow the registered submodule).
    items: ItemTerms | None

    @property
    def difficulty(self) -> nn.Embedding | None:
        """The item difficulties (None on skill-level data)."""
        return None if self.items is None else self.items.difficulty

    def predict_step(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        mastery = self(batch)
        return mastery, next_step_logits(mastery, batch, self.difficulty)


def evidence(batch: Batch, num_skills: int, graph: torch.Tensor) -> torch.Tensor:
    """phi(t, s) of the module docstring, after each attempt t: [B, T, S, 6]. Data only (no parameters)."""
    with torch.no_grad():
        onehot = torch.nn.functional.one_hot(batch.skill, num_skills + 1)[..., 1:].float()  # [B, T, S]
        onehot = onehot * batch.mask.unsqueeze(-1)
        right = torch.cumsum(onehot * batch.correct.unsqueeze(-1), dim=1)
        attempts = torch.cumsum(onehot, dim=1)
        wrong = attempts - right
        steps = torch.arange(1, onehot.shape[1] + 1, dtype=torch.float32).view(1, -1, 1)
        last_pos = torch.cummax(onehot * steps, dim=1).values
        since = torch.log1p(steps - last_pos) * (last_pos > 0)
        # Recent outcomes on each skill: e <- g e + (1 - g)(2c - 1) at each attempt on it (g = 0.3 and 0.7).
        signed = onehot * (2 * batch.correct.unsqueeze(-1) - 1)
        fast, slow = torch.zeros_like(signed[:, 0]), torch.zeros_like(signed[:, 0])
        recent = []
        for t in range(signed.shape[1]):
            hit = onehot[:, t] > 0
            fast = torch.where(hit, 0.3 * fast + 0.7 * signed[:, t], fast)
            slow = torch.where(hit, 0.7 * slow + 0.3 * signed[:, t], slow)
            recent.append(torch.stack([fast, slow], dim=-1))
        related = ((right - wrong) / (1 + attempts)) @ graph.T
        return torch.cat([torch.stack([torch.log1p(right), torch.log1p(wrong), since, related], dim=-1),
                          torch.stack(recent, dim=1)], dim=-1)


class AttentionKT(KTModel):
    def __init__(self, num_skills: int, skill_embeddings: np.ndarray, graph: np.ndarray, d_model: int = 128,
                 layers: int = 2, heads: int = 4, dropout: float = 0.2, num_items: int = 0):
        super().__init__()
        self.num_skills = num_skills
        self.items = ItemTerms(num_items, d_model) if num_items else None
        self.register_buffer("llm", torch.cat([torch.zeros(1, skill_embeddings.shape[1]),
                                               torch.tensor(np.array(skill_embeddings), dtype=torch.float32)]))
        self.register_buffer("graph", torch.tensor(np.array(graph), dtype=torch.float32))
        self.interaction = nn.Embedding(2 * num_skills + 1, d_model, padding_idx=0)
        self.llm_in = nn.Linear(skill_embeddings.shape[1], d_model, bias=False)
        # A recurrent layer orders the attempts (recency matters in learning; it works better here than
        # absolute position embeddings), then causal self-attention looks back over the whole window.
        self.recurrent = nn.LSTM(d_model, d_model, batch_first=True)
        layer = nn.TransformerEncoderLayer(d_model, heads, 4 * d_model, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.query = nn.Linear(d_model, d_model)
        self.skill_key = nn.Embedding(num_skills + 1, d_model)
        self.llm_key = nn.Linear(skill_embeddings.shape[1], d_model, bias=False)
        self.skill_bias = nn.Parameter(torch.zeros(num_skills))
        self.evidence_weight = nn.Parameter(torch.zeros(num_skills, EVIDENCE))
        self.scale = d_model**0.5  # scaled dot product: logits start near 0 instead of around sqrt(d)

    def forward(self, batch: Batch) -> torch.Tensor:
        t = batch.skill.shape[1]
        x = (self.interaction(batch.skill + self.num_skills * batch.correct.long() * batch.mask)
             + self.llm_in(self.llm[batch.skill]))
        if self.items is not None:
            x = x + self.items.input(batch.item)
        x = self.recurrent(x)[0]
        causal = torch.triu(torch.ones(t, t, dtype=torch.bool, device=x.device), diagonal=1)
        h = self.norm(self.encoder(x, mask=causal, src_key_padding_mask=~batch.mask, is_causal=True))
        keys = self.skill_key.weight[1:] + self.llm_key(self.llm[1:])  # [S, d]
        logits = self.query(h) @ keys.T / self.scale + self.skill_bias
        phi = evidence(batch, self.num_skills, self.graph)
        return logits + (phi * self.evidence_weight).sum(-1)


@dataclass
class DKTSpec:
    """A DKT network's sizes, as a student manifest or a teacher member's config saves them."""

    num_skills: int
    embed: int = 32
    hidden: int = 64
    dropout: float = 0.1
    num_items: int = 0


class DKT(KTModel):
    def __init__(self, num_skills: int, embed: int = 32, hidden: int = 64, dropout: float = 0.1, num_items: int = 0):
        super().__init__()
        self.num_skills = num_skills
        self.interaction = nn.Embedding(2 * num_skills + 1, embed, padding_idx=0)
        self.items = ItemTerms(num_items, embed) if num_items else None
        self.lstm = nn.LSTM(embed, hidden, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, num_skills)

    def forward(self, batch: Batch, state: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        return self.step(batch.skill, batch.correct, batch.mask, state, batch.item)[0]

    def step(self, skill: torch.Tensor, correct: torch.Tensor, mask: torch.Tensor,
             state: tuple[torch.Tensor, torch.Tensor] | None = None, item: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Logits for every skill after these attempts, and the LSTM state to carry on from (simulation)."""
        x = self.interaction(skill + self.num_skills * correct.long() * mask)
        if self.items is not None:
            x = x + self.items.input(item)
        h, state = self.lstm(x, state)
        return self.out(self.dropout(h)), state


class Ensemble(KTModel):
    """Members' probabilities averaged, returned as logits like a single model's (one member passes through)."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.items = None  # each member applies its own item terms

    @staticmethod
    def _mean(logits: list[torch.Tensor]) -> torch.Tensor:
        if len(logits) == 1:
            return logits[0]
        return torch.logit(torch.stack([torch.sigmoid(z) for z in logits]).mean(0), eps=1e-6)

    def forward(self, batch: Batch) -> torch.Tensor:
        return self._mean([m(batch) for m in self.members])

    def predict_step(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        steps = [m.predict_step(batch) for m in self.members]
        return self._mean([a for a, _ in steps]), self._mean([b for _, b in steps])
