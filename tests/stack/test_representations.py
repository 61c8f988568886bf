"""Frozen representations on Ray Data, kept by text digest and backbone checksum (raykd.stack.representations)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from raykd.data.preparation import text_digests
from raykd.stack.config import RepresentationConfig
from raykd.stack.representations import Encoder, RepresentationCache, backbone_checksum, cut_layers, represent

TEXTS = ["the vinegar reacts with the marble", "mass of each sample before and after",
         "size of the containers", "the rinse water", "the vinegar reacts with the marble"]


def tiny_backbone(folder: Path, seed: int) -> Path:
    """A small random BERT saved as a model folder (with MiniLM's tokenizer): a backbone the test can change."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from raykd.teacher.model import minilm_path

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    model = BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=64))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    backbone_checksum.cache_clear()
    return folder


def frame(texts: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"text": texts, "text_sha256": text_digests(pd.Series(texts, dtype=object))})


def test_cache_is_reused_and_invalidated_by_a_changed_text_or_backbone(ray_session, tmp_path) -> None:
    backbone = tiny_backbone(tmp_path / "bert", seed=0)
    cfg = RepresentationConfig(backbone=str(backbone), max_length=32, batch_size=2, cpu_bf16=False)
    cache = tmp_path / "cache"

    first = represent(frame(TEXTS), cfg, cache)
    assert (first.cached, first.computed) == (0, 4)  # four distinct texts, the fifth is the first again
    np.testing.assert_array_equal(first.vectors[0], first.vectors[4])
    # The vectors are the encoder's own, whatever batches Ray Data made.
    np.testing.assert_allclose(first.vectors, Encoder(cfg).encode(TEXTS), atol=1e-5)

    again = represent(frame(TEXTS), cfg, cache)
    assert (again.cached, again.computed) == (4, 0)
    np.testing.assert_array_equal(again.vectors, first.vectors)

    edited = [*TEXTS[:3], "the rinse water, distilled"]
    changed = represent(frame(edited), cfg, cache)
    assert (changed.cached, changed.computed) == (3, 1)  # only the changed text is encoded
    np.testing.assert_array_equal(changed.vectors[:3], first.vectors[:3])

    tiny_backbone(backbone, seed=1)  # the same folder, other weights: another checksum, another key
    other = represent(frame(TEXTS), cfg, cache)
    assert other.key != first.key and (other.cached, other.computed) == (0, 4)
    assert not np.allclose(other.vectors, first.vectors)
    assert sorted(p.name for p in cache.iterdir()) == sorted([first.key, other.key])


def test_cache_parts_are_written_whole_and_read_as_one(tmp_path) -> None:
    cfg = RepresentationConfig(backbone="minilm")
    cache = RepresentationCache(tmp_path, cfg)
    cache.add(["a", "b"], np.array([[1.0, 2.0], [3.0, 4.0]]))
    cache.add(["b", "c"], np.array([[3.0, 4.0], [5.0, 6.0]]))
    index, matrix = cache.load()
    assert sorted(index) == ["a", "b", "c"]
    np.testing.assert_array_equal(matrix[index["c"]], [5.0, 6.0])
    assert not list(cache.folder.glob(".*.tmp"))  # no half-written part left behind
    assert (cache.folder / "meta.json").is_file()


def test_cut_layers_keeps_the_first_layers(tmp_path) -> None:
    from transformers import AutoModel

    model = AutoModel.from_pretrained(tiny_backbone(tmp_path / "bert", seed=0))
    assert cut_layers(model, 1) == 1 and len(model.encoder.layer) == 1
    assert cut_layers(model, None) == 1  # nothing more to cut
    with pytest.raises(ValueError, match="layers"):
        cut_layers(type("M", (), {"config": type("C", (), {"num_hidden_layers": 3})()})(), 1)
