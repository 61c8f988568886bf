"""The teacher's network code that needs only PyTorch, transformers and peft (no raykd config, Ray or DeepSpeed):
tiny and real-shaped random configs of real architectures, the mean-pooling classifier, LoRA. raykd.teacher.model
builds teachers from them; `bench/device_check.py` runs them alone on a lent GPU machine that has nothing else.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from raykd.errors import ConfigError

TINY_ARCHS = ("gpt_oss", "llama", "qwen2", "bert")


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


def apply_lora(model: nn.Module, lora: Any) -> nn.Module:
    """`model` with LoRA adapters as `lora` (raykd.teacher.config.LoraConfig: r, alpha, dropout, target_modules,
    include_experts) says."""
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
