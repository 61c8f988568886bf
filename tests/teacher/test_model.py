import pytest

from raykd.config import LoraConfig, ModelConfig
from raykd.errors import ConfigError
from raykd.teacher.model import build_model, build_tokenizer, count_parameters


def test_lora_on_attention_and_experts_of_tiny_gpt_oss():
    cfg = ModelConfig(kind="llm", tiny="gpt_oss")
    tok = build_tokenizer(cfg)
    attn = build_model(cfg, LoraConfig(r=4, alpha=8), num_labels=5, tokenizer=tok, on_gpu=False)
    names = [n for n, p in attn.named_parameters() if p.requires_grad]
    assert any("q_proj.lora_A" in n for n in names) and any("score" in n for n in names)
    assert not any("experts" in n for n in names)
    experts = build_model(cfg, LoraConfig(r=4, alpha=8, dropout=0.0, include_experts=True), 5, tok, on_gpu=False)
    assert count_parameters(experts)[1] > count_parameters(attn)[1]
    assert any("experts" in n for n, p in experts.named_parameters() if p.requires_grad)


def test_encoder_teacher_is_the_offline_minilm():
    cfg = ModelConfig(kind="encoder", name_or_path="minilm")
    model = build_model(cfg, LoraConfig(enabled=False), num_labels=4, tokenizer=build_tokenizer(cfg), on_gpu=False)
    total, trainable = count_parameters(model)
    assert 22_000_000 < total < 23_000_000 and trainable == total


def test_lora_targets_must_exist():
    cfg = ModelConfig(kind="llm", tiny="llama")
    with pytest.raises(ConfigError, match="none of"):
        build_model(cfg, LoraConfig(target_modules=["nope"]), 3, build_tokenizer(cfg), on_gpu=False)
