"""A student embedding started from the teacher's: its token embeddings, reduced to the student's width.

    E_t  (teacher vocabulary x d_t)   the fine-tuned teacher's input embeddings
    rows = E_t[id of each student sub-word]          the student keeps the few thousand pieces its data uses
    E_s  = PCA_k(rows) * (1 / std)                   k = student embed_dim; scaled to unit std like nn.Embedding
    E_s[<pad>] = 0;  E_s[<unk>] = the teacher's unknown-token row (or 0)
    E_s[<sep>] = the teacher's separator row, e.g. BERT's [SEP] (or 0)        (pair students)

The student then trains the embedding like any other weight: the start carries what the teacher learned about
which pieces mean similar things, which a 100x smaller model cannot learn from a few thousand responses.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA

from raykd.inputs import SEP
from raykd.students.vocab import UNK, Vocabulary


def token_source(teacher_model: str | Path) -> Path:
    """The folder whose sub-words and input embeddings a student starts from: a fine-tuned teacher's own folder;
    for an ensemble, the member it names (`token_source`); for a stack, the backbone of its first
    representation (frozen, as the stack read it)."""
    import json

    from raykd.scoring import MANIFEST

    folder = Path(teacher_model)
    manifest = json.loads((folder / MANIFEST).read_text()) if (folder / MANIFEST).is_file() else {}
    kind = manifest.get("type")
    if kind == "ensemble":
        return token_source(folder / manifest["token_source"])
    if kind == "stack":
        from raykd.teacher.model import resolve_model_path

        return Path(resolve_model_path(manifest["representations"][0]["backbone"]))
    return folder


def tokenizer_folder(teacher_model: str | Path) -> Path:
    """Where the token source keeps its tokenizer (a teacher folder's `tokenizer/`, a backbone's own folder)."""
    source = token_source(teacher_model)
    return source / "tokenizer" if (source / "tokenizer").is_dir() else source


@functools.lru_cache(maxsize=1)
def teacher_token_embeddings(teacher_model: str | Path) -> tuple[np.ndarray, dict[str, int], int | None, int | None]:
    """The token source's input embedding matrix, its token -> row index, and its unknown and separator
    tokens' rows. Kept for the next call: a cross-validated Tune trial fits a student per fold and a refit from
    the same teacher."""
    from transformers import AutoModel, AutoTokenizer

    from raykd.scoring import MANIFEST
    from raykd.teacher.artifact import TeacherScorer

    source = token_source(teacher_model)
    if (source / MANIFEST).is_file():
        scorer = TeacherScorer(source, device="cpu")
        model, tokenizer = scorer.model, scorer.tokenizer
    else:
        model, tokenizer = AutoModel.from_pretrained(source), AutoTokenizer.from_pretrained(source)
    weight = model.get_input_embeddings().weight.detach().float().numpy()
    return weight, tokenizer.get_vocab(), tokenizer.unk_token_id, tokenizer.sep_token_id


def reduce_embeddings(teacher: np.ndarray, index: dict[str, int], unk: int | None, vocab: Vocabulary,
                      dim: int, seed: int = 0, sep: int | None = None) -> torch.Tensor:
    """The student's (len(vocab) x dim) starting embedding from the teacher's matrix (see the module docstring).
    Every student piece must be a teacher token: the vocabulary was built with the teacher's tokenizer."""
    positions = [i for i, t in enumerate(vocab.tokens) if i >= 2 and t != SEP]
    pieces = [vocab.tokens[i] for i in positions]
    missing = [t for t in pieces if t not in index]
    if missing:
        raise ValueError(f"{len(missing)} student token(s) are not in the teacher's vocabulary, e.g. {missing[:3]} "
                         "(build the vocabulary with tokenizer: wordpiece from the same teacher)")
    rows = teacher[[index[t] for t in pieces]].astype(np.float64)
    k = min(dim, len(pieces), rows.shape[1])
    pca = PCA(n_components=k, random_state=seed).fit(rows)
    reduced = np.zeros((len(vocab), dim))
    reduced[positions, :k] = pca.transform(rows)
    for token, row in ((UNK, unk), (SEP, sep)):
        if row is not None and token in vocab.index:
            reduced[vocab.index[token], :k] = pca.transform(teacher[[row]].astype(np.float64))[0]
    scale = reduced[positions, :k].std()
    reduced /= scale if scale > 0 else 1.0
    return torch.tensor(reduced, dtype=torch.float32)


def init_from_teacher(model: torch.nn.Module, vocab: Vocabulary, teacher_model: str | Path, seed: int = 0) -> None:
    """Copy the reduced teacher embeddings into the student's token embedding (in place)."""
    embed: torch.nn.Embedding = model.token_embedding  # type: ignore[assignment]
    weight, index, unk, sep = teacher_token_embeddings(teacher_model)
    with torch.no_grad():
        embed.weight.copy_(reduce_embeddings(weight, index, unk, vocab, embed.embedding_dim, seed, sep))
