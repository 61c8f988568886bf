"""Frozen representations: each text's states in a pretrained backbone, mean-pooled over its real tokens,
computed once per text and kept by text digest and backbone checksum.

    h(text) = mean over tokens t with mask_t = 1 of H_layer(text)_t        (H: the backbone's hidden states)

A stacked teacher (raykd.stack) reads the knowledge of encoders and LLMs this way without fine-tuning them: a
2-core CPU runs a 270M-parameter LLM forward over 20,000 short answers in minutes, not the hours a fine-tune
takes. `layer` stops the backbone after that many layers (cheaper, and a middle layer of a decoder LLM often
describes a text better than its last).

The cache, `<cache_dir>/<key>/`, holds `meta.json` and parts `part-<sha>.npz` (text digests and float32
vectors), each written atomically; readers take the union of the parts. The key names the backbone, the sha256
of its files (a changed backbone is another key), the layer, the token limit and the precision; a changed text
has another digest. So a rerun computes only texts it has not seen, and nothing stale is ever read.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raykd.io import atomic_path, write_text_atomic
from raykd.stack.config import RepresentationConfig

PART = "part-{}.npz"


def default_cache_dir() -> Path:
    if os.environ.get("RAYKD_HOME"):
        return Path(os.environ["RAYKD_HOME"]).expanduser() / "representations"
    return Path.home() / ".cache" / "raykd" / "representations"


@functools.lru_cache(maxsize=32)
def backbone_checksum(backbone: str) -> str:
    """sha256 of a backbone's files: for a zoo folder its manifest (which records every file's sha256), for
    any other folder every file's name and content."""
    from raykd.teacher.model import resolve_model_path
    from raykd.zoo import MANIFEST

    folder = Path(resolve_model_path(backbone))
    digest = hashlib.sha256()
    if (folder / MANIFEST).is_file():
        digest.update((folder / MANIFEST).read_bytes())
        return digest.hexdigest()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        with path.open("rb") as f:
            for block in iter(lambda f=f: f.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def precision(cfg: RepresentationConfig) -> str:
    from raykd.teacher.model import cpu_bf16_supported

    return "bf16" if cfg.cpu_bf16 and cpu_bf16_supported() else "fp32"


def cache_key(cfg: RepresentationConfig) -> str:
    """`<name>-<checksum>-L<layer>-T<max_length>-<precision>`: what makes two vectors of a text the same."""
    name = Path(cfg.backbone).name if "/" in cfg.backbone else cfg.backbone
    layer = "last" if cfg.layer is None else str(cfg.layer)
    return f"{name}-{backbone_checksum(cfg.backbone)[:16]}-L{layer}-T{cfg.max_length}-{precision(cfg)}"


class Encoder:
    """One backbone, cut after `layer` layers, that turns texts into mean-pooled vectors."""

    def __init__(self, cfg: RepresentationConfig, threads: int | None = None):
        import torch
        from transformers import AutoModel, AutoTokenizer

        from raykd.teacher.model import _quiet_transformers, resolve_model_path

        _quiet_transformers()
        if threads:
            torch.set_num_threads(threads)
        self.cfg = cfg
        path = resolve_model_path(cfg.backbone)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        if self.tokenizer.pad_token is None:  # decoder tokenizers: the EOS token pads (the mask hides it)
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModel.from_pretrained(path, dtype=torch.float32).eval()
        self.layers = cut_layers(self.model, cfg.layer)
        self.bf16 = precision(cfg) == "bf16"

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32 mean-pooled states; texts batched by length so that little is padding."""
        import contextlib

        import torch

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()
        size = self.cfg.batch_size
        with torch.no_grad(), autocast:
            for start in range(0, len(texts), size):
                rows = order[start:start + size]
                enc = self.tokenizer([texts[i] or " " for i in rows], padding=True, truncation=True,
                                     max_length=self.cfg.max_length, return_tensors="pt")
                states = self.model(**enc).last_hidden_state.float()
                mask = enc["attention_mask"].unsqueeze(-1).float()
                out[rows] = ((states * mask).sum(1) / mask.sum(1).clamp(min=1)).numpy()
        return out


def cut_layers(model: Any, layer: int | None) -> int:
    """Keep the first `layer` transformer layers of `model` (all when None); returns how many it runs."""
    import torch

    total = int(model.config.num_hidden_layers)
    if layer is None or layer >= total:
        return total
    for holder in (model, getattr(model, "encoder", None), getattr(model, "model", None)):
        for attr in ("layers", "layer"):
            blocks = getattr(holder, attr, None) if holder is not None else None
            if isinstance(blocks, torch.nn.ModuleList) and len(blocks) == total:
                setattr(holder, attr, blocks[:layer])
                model.config.num_hidden_layers = layer
                return layer
    raise ValueError(f"cannot find the {total} layers of {type(model).__name__} to keep the first {layer}")


class RepresentationCache:
    """The vectors of one cache key (see the module docstring)."""

    def __init__(self, root: str | Path, cfg: RepresentationConfig):
        self.key = cache_key(cfg)
        self.folder = Path(root).expanduser() / self.key
        self.cfg = cfg

    def load(self) -> tuple[dict[str, int], np.ndarray]:
        """Every cached text digest -> its row in the returned matrix."""
        digests, blocks = [], []
        for part in sorted(self.folder.glob(PART.format("*"))):
            with np.load(part, allow_pickle=False) as z:
                digests.append(z["digests"])
                blocks.append(z["vectors"])
        if not digests:
            return {}, np.zeros((0, 0), np.float32)
        every = np.concatenate(digests)
        _, first = np.unique(every, return_index=True)  # a text kept twice: its first row
        return {str(every[i]): int(i) for i in first}, np.concatenate(blocks)

    def add(self, digests: list[str], vectors: np.ndarray) -> Path:
        """Keep `vectors` (one row per digest) as a new part, written atomically."""
        name = hashlib.sha256("".join(digests).encode()).hexdigest()[:16]
        path = self.folder / PART.format(name)
        with atomic_path(path) as tmp, tmp.open("wb") as f:
            np.savez(f, digests=np.asarray(digests, dtype=str), vectors=vectors.astype(np.float32))
        if not (self.folder / "meta.json").is_file():
            meta = {**dataclasses.asdict(self.cfg), "checksum": backbone_checksum(self.cfg.backbone), "key": self.key}
            write_text_atomic(self.folder / "meta.json", json.dumps(meta, indent=2))
        return path


class EncodeBatch:
    """A Ray Data callable class: loads the backbone once per actor, encodes pandas batches of texts."""

    def __init__(self, cfg: dict[str, Any], threads: int = 1):
        from raykd.config import from_dict

        self.encoder = Encoder(from_dict(RepresentationConfig, cfg, "representation"), threads)

    def __call__(self, batch: pd.DataFrame) -> dict[str, np.ndarray]:
        return {"text_sha256": batch["text_sha256"].to_numpy(dtype=str),
                "vector": self.encoder.encode(batch["text"].tolist())}


@dataclasses.dataclass
class Represented:
    """One representation of a frame's texts: the matrix (rows in the frame's order) and how it was obtained."""

    key: str
    vectors: np.ndarray
    cached: int  # distinct texts found in the cache
    computed: int  # distinct texts encoded now


def represent(texts: pd.DataFrame, cfg: RepresentationConfig, cache_dir: str | Path, concurrency: int = 1,
              num_cpus: float = 1.0) -> Represented:
    """Vectors for `texts` (columns `text`, `text_sha256`): cached ones read, the rest encoded on Ray Data (an
    actor pool of `concurrency`, `num_cpus` each) and added to the cache."""
    cache = RepresentationCache(cache_dir, cfg)
    index, matrix = cache.load()
    distinct = texts.drop_duplicates("text_sha256")
    missing = distinct[~distinct["text_sha256"].isin(index)]
    if len(missing):
        digests, vectors = encode_on_ray(missing, cfg, concurrency, num_cpus)
        cache.add(digests, vectors)
        index, matrix = cache.load()
    rows = np.array([index[d] for d in texts["text_sha256"]], dtype=np.int64)
    return Represented(cache.key, matrix[rows], len(distinct) - len(missing), len(missing))


def encode_on_ray(frame: pd.DataFrame, cfg: RepresentationConfig, concurrency: int, num_cpus: float
                  ) -> tuple[list[str], np.ndarray]:
    import ray

    # Blocks of similar lengths (sorted first): batches pad little, and progress shows as blocks finish.
    frame = frame.assign(_len=frame["text"].str.len()).sort_values("_len", kind="stable")[["text", "text_sha256"]]
    size = 4 * cfg.batch_size
    ds = ray.data.from_pandas([frame.iloc[i:i + size] for i in range(0, len(frame), size)])
    encoded = ds.map_batches(EncodeBatch, fn_constructor_kwargs={"cfg": dataclasses.asdict(cfg),
                                                                 "threads": max(1, int(num_cpus))},
                             batch_size=size, batch_format="pandas",
                             compute=ray.data.ActorPoolStrategy(size=concurrency), num_cpus=num_cpus)
    digests: list[str] = []
    parts = []
    for batch in encoded.iter_batches(batch_format="numpy", batch_size=None):
        digests.extend(str(d) for d in batch["text_sha256"])
        parts.append(np.asarray(batch["vector"], dtype=np.float32))
    return digests, np.concatenate(parts)
