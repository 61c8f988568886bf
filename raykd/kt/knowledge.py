"""What a language model knows about the skills: an embedding per skill and a skill-relation graph.

    named skills    e_s = mean-pooled last hidden state of the zoo model over the skill's name (unit length)
                    relations "similarity":   G[s, t] = cos(e_s, e_t) for t among s's k nearest skills
                                                (k = `neighbours`), else 0
                    relations "prerequisite": G[s, t] = P(Yes | "must a student understand <t> before learning
                                                <s>?") from a zoo LLM, for t among s's k nearest skills
    unnamed skills  e_s = 0 (the teacher learns its own embedding only)
                    G[s, t] = P(t attempted | s attempted by the same learner), from the training sequences,
                    kept for s's k most frequent companions

The graph has a zero diagonal and rows that sum to 1 (or 0), so G @ v averages v over a skill's relations.
The language model runs once, here; the teacher reads the saved `knowledge.npz` and no model runs at inference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from raykd.io import atomic_path, write_text_atomic
from raykd.kt.data import Sequence


@dataclass
class SkillKnowledge:
    skill_ids: list[int]  # row i of both matrices is skill_ids[i]
    embeddings: np.ndarray  # [S, d] float32 (all zero when the skills have no names)
    graph: np.ndarray  # [S, S] float32, row-normalised
    source: str  # the zoo model, or "cooccurrence"

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / "knowledge.npz") as tmp, open(tmp, "wb") as f:
            np.savez(f, skill_ids=np.asarray(self.skill_ids), embeddings=self.embeddings, graph=self.graph)
        write_text_atomic(folder / "knowledge.json", json.dumps({"source": self.source,
                                                                 "skills": len(self.skill_ids)}))
        return folder / "knowledge.npz"

    @classmethod
    def load(cls, folder: str | Path) -> SkillKnowledge:
        folder = Path(folder)
        arrays = np.load(folder / "knowledge.npz")
        meta = json.loads((folder / "knowledge.json").read_text())
        return cls([int(s) for s in arrays["skill_ids"]], arrays["embeddings"], arrays["graph"], meta["source"])


def keep_neighbours(weights: np.ndarray, k: int) -> np.ndarray:
    """Each row's k largest off-diagonal weights (non-negative), the rest 0, then rows normalised to sum 1."""
    w = np.clip(weights.astype(np.float64), 0, None)
    np.fill_diagonal(w, 0)
    if k < w.shape[1]:
        cut = np.argsort(-w, axis=1)[:, k:]
        np.put_along_axis(w, cut, 0.0, axis=1)
    sums = w.sum(1, keepdims=True)
    return np.divide(w, sums, out=np.zeros_like(w), where=sums > 0).astype(np.float32)


def cooccurrence(sequences: list[Sequence], skill_ids: list[int]) -> np.ndarray:
    """P(t attempted | s attempted) over learners: counts of learners who attempted both, over those with s."""
    index = {s: i for i, s in enumerate(skill_ids)}
    seen = np.zeros((len(sequences), len(skill_ids)), dtype=np.float64)
    for r, seq in enumerate(sequences):
        seen[r, [index[int(s)] for s in set(seq.skills.tolist()) if int(s) in index]] = 1
    both = seen.T @ seen
    return np.divide(both, np.diag(both)[:, None], out=np.zeros_like(both), where=np.diag(both)[:, None] > 0)


def embed_names(texts: list[str], model_name: str, batch_size: int = 32) -> np.ndarray:
    """Mean-pooled last hidden states of a zoo model over each text, unit length."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from raykd import zoo

    folder = zoo.resolve(model_name)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModel.from_pretrained(folder).eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            enc = tokenizer(texts[i:i + batch_size], padding=True, truncation=True, max_length=64,
                            return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out.append(((hidden * mask).sum(1) / mask.sum(1)).float().numpy())
    vectors = np.concatenate(out)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-8)).astype(np.float32)


PREREQUISITE_PROMPT = ("Question: In school mathematics, must a student understand \"{before}\" before learning "
                       "\"{after}\"? Answer Yes or No.\nAnswer:")


def prerequisite_probabilities(names: list[str], pairs: list[tuple[int, int]], model_name: str,
                               batch_size: int = 16) -> np.ndarray:
    """P(Yes) over {Yes, No} for each (after, before) pair of name indices: does `before` come first?"""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from raykd import zoo

    folder = zoo.resolve(model_name)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.padding_side = "left"  # the answer token follows the last prompt token of every row
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    yes, no = (tokenizer.encode(w, add_special_tokens=False)[0] for w in (" Yes", " No"))
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(pairs), batch_size):
            prompts = [PREREQUISITE_PROMPT.format(before=names[b], after=names[a]) for a, b in pairs[i:i + batch_size]]
            enc = tokenizer(prompts, return_tensors="pt", padding=True)
            last = model(**enc).logits[:, -1, [yes, no]].float()
            out.append(torch.softmax(last, dim=-1)[:, 0].numpy())
    return np.concatenate(out) if out else np.zeros(0)


def build_knowledge(skill_ids: list[int], skill_names: dict[int, str], train: list[Sequence],
                    model_name: str, neighbours: int, relations: str = "similarity",
                    relation_model: str = "smollm2-135m") -> SkillKnowledge:
    """Embeddings and graph from the zoo models when every skill has a name, else from co-occurrence."""
    if skill_names and model_name != "cooccurrence" and all(s in skill_names for s in skill_ids):
        names = [skill_names[s] for s in skill_ids]
        emb = embed_names(names, model_name)
        similar = keep_neighbours(emb @ emb.T, neighbours)
        if relations == "similarity":
            return SkillKnowledge(skill_ids, emb, similar, model_name)
        pairs = [(a, int(b)) for a in range(len(names)) for b in np.flatnonzero(similar[a])]
        weights = np.zeros_like(similar)
        for (a, b), p in zip(pairs, prerequisite_probabilities(names, pairs, relation_model), strict=True):
            weights[a, b] = p
        return SkillKnowledge(skill_ids, emb, keep_neighbours(weights, neighbours),
                              f"{model_name} + {relation_model} prerequisites")
    emb = np.zeros((len(skill_ids), 1), dtype=np.float32)
    return SkillKnowledge(skill_ids, emb, keep_neighbours(cooccurrence(train, skill_ids), neighbours),
                          "cooccurrence")
