"""Student tokenization: a compact vocabulary built from the training text.

`words`: lower-cased word and punctuation tokens. `wordpiece`: the teacher's own sub-word tokenizer,
with only the pieces seen in training kept, so embeddings stay small (a 30k-piece teacher vocabulary
shrinks to the few thousand pieces a prompt's answers use).

The separator of pair inputs (raykd.inputs.SEP) is always one token, whatever the mode; a vocabulary built with
it reserved holds it at SEP_ID.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

from raykd.inputs import SEP

PAD, UNK = "<pad>", "<unk>"
SEP_ID = 2  # where `build(..., reserved=[SEP])` puts the separator (the pair student looks for this id)
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")


class Vocabulary:
    def __init__(self, tokens: Sequence[str], mode: str = "words", tokenizer_path: str | None = None):
        if list(tokens[:2]) != [PAD, UNK]:
            raise ValueError("a vocabulary starts with <pad>, <unk>")
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        self.mode = mode
        self.tokenizer_path = tokenizer_path
        self._hf: Any = None

    def __len__(self) -> int:
        return len(self.tokens)

    def split(self, text: str) -> list[str]:
        if SEP in text:
            first, *rest = text.split(SEP)
            return self._split(first) + [tok for part in rest for tok in (SEP, *self._split(part))]
        return self._split(text)

    def _split(self, text: str) -> list[str]:
        if self.mode == "words":
            return _WORD.findall(text.lower())
        if self._hf is None:
            from transformers import AutoTokenizer

            self._hf = AutoTokenizer.from_pretrained(self.tokenizer_path)
        return self._hf.tokenize(text)

    @classmethod
    def build(cls, texts: Iterable[str], max_size: int = 4000, min_freq: int = 2, mode: str = "words",
              tokenizer_path: str | None = None, reserved: Sequence[str] = ()) -> Vocabulary:
        """The `max_size` most frequent tokens (seen at least `min_freq` times), after <pad>, <unk> and the
        `reserved` tokens, which are kept whatever their count."""
        probe = cls([PAD, UNK], mode, tokenizer_path)
        counts = Counter(tok for text in texts for tok in probe.split(text))
        # Most frequent first; ties broken alphabetically so the same data gives the same vocabulary.
        ranked = sorted((t for t, c in counts.items() if c >= min_freq and t not in reserved),
                        key=lambda t: (-counts[t], t))
        head = [PAD, UNK, *reserved]
        return cls([*head, *ranked[: max(0, max_size - len(head))]], mode, tokenizer_path)

    def ids(self, texts: Sequence[str], max_len: int) -> list[list[int]]:
        """Each text's token ids, at most `max_len`; an empty text gets one <unk> (every row has a token)."""
        get = self.index.get
        return [[get(t, 1) for t in self.split(text)][:max_len] or [1] for text in texts]

    def encode(self, texts: Sequence[str], max_len: int) -> torch.Tensor:
        """Token ids, right-padded with 0 to the longest text (at most `max_len`); empty texts get one <unk>."""
        import torch

        ids = self.ids(texts, max_len)
        width = max(len(x) for x in ids)
        out = torch.zeros((len(ids), width), dtype=torch.long)
        for i, row in enumerate(ids):
            out[i, : len(row)] = torch.tensor(row)
        return out

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "tokens": self.tokens,
                "tokenizer_path": "tokenizer" if self.tokenizer_path else None}

    def save(self, folder: Path) -> None:
        (folder / "vocab.json").write_text(json.dumps(self.to_json()))
        if self.mode == "wordpiece" and self.tokenizer_path:
            from transformers import AutoTokenizer

            AutoTokenizer.from_pretrained(self.tokenizer_path).save_pretrained(folder / "tokenizer")

    @classmethod
    def load(cls, folder: Path) -> Vocabulary:
        d = json.loads((folder / "vocab.json").read_text())
        path = str(folder / d["tokenizer_path"]) if d.get("tokenizer_path") else None
        return cls(d["tokens"], d["mode"], path)
