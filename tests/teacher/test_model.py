import pytest
import torch

from raykd.errors import ConfigError
from raykd.teacher.config import LoraConfig, ModelConfig
from raykd.teacher.model import build_model, build_tokenizer, tiny_config
from raykd.training import count_parameters


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


def test_bf16_lora_teacher_trains_one_dtype():
    # DeepSpeed's bf16 ZeRO optimizer rejects mixed trainable dtypes (seen on an H100: peft had made the
    # adapters fp32 beside a bf16 head).
    cfg = ModelConfig(kind="llm", tiny="gpt_oss", dtype="bfloat16")
    tok = build_tokenizer(cfg)
    for lora in (LoraConfig(r=4, alpha=8), LoraConfig(r=4, alpha=8, dropout=0.0, include_experts=True)):
        model = build_model(cfg, lora, 3, tok, on_gpu=False)
        assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.bfloat16}


def test_tiny_overrides_reshape_the_random_model():
    # gpt-oss-20b's expert layout at a tiny width; unknown fields name themselves.
    conf = tiny_config("gpt_oss", 100, 0, 3, layers=4, hidden=64,
                       overrides={"num_local_experts": 32, "num_experts_per_tok": 4, "num_key_value_heads": 1})
    assert (conf.num_local_experts, conf.num_experts_per_tok, conf.num_key_value_heads) == (32, 4, 1)
    assert conf.layer_types == ["sliding_attention", "full_attention"] * 2
    with pytest.raises(ConfigError, match="tiny_overrides.num_expertz"):
        tiny_config("gpt_oss", 100, 0, 3, 2, 64, {"num_expertz": 3})


def test_cpu_bf16_autocast_computes_in_bf16_and_keeps_fp32_weights(monkeypatch):
    from raykd.teacher import model as teacher_model

    cfg = ModelConfig(kind="encoder", tiny="bert", cpu_bf16=True)
    tok = build_tokenizer(cfg)
    model = build_model(cfg, LoraConfig(enabled=False), 3, tok, on_gpu=False).eval()
    enc = tok(["the cell membrane controls what enters"], return_tensors="pt")
    monkeypatch.setattr(teacher_model, "cpu_bf16_supported", lambda: True)
    with torch.no_grad(), teacher_model.autocast(cfg, torch.device("cpu")):
        fast = model(**enc).logits
    with torch.no_grad(), teacher_model.autocast(ModelConfig(kind="encoder", tiny="bert"), torch.device("cpu")):
        exact = model(**enc).logits
    assert fast.dtype == torch.bfloat16 and exact.dtype == torch.float32
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert torch.allclose(fast.float(), exact, atol=0.05)
    # A CPU without native bf16 keeps fp32 (emulated bf16 would be slower), and says so.
    monkeypatch.setattr(teacher_model, "cpu_bf16_supported", lambda: False)
    with pytest.warns(UserWarning, match="no native bf16"), teacher_model.autocast(cfg, torch.device("cpu")):
        assert model(**enc).logits.dtype == torch.float32


def test_mean_pooling_averages_the_real_tokens_only():
    cfg = ModelConfig(kind="encoder", tiny="bert", head="mean")
    tok = build_tokenizer(cfg)
    model = build_model(cfg, LoraConfig(enabled=False), 3, tok, on_gpu=False).eval()
    names = [n for n, _ in model.named_parameters()]
    assert "classifier.weight" in names and not any("pooler" in n for n in names)
    short, long = "roots take up water", "the cell membrane controls what enters and leaves the cell"
    batch = tok([short, long], padding=True, return_tensors="pt")
    alone = tok([short], return_tensors="pt")
    assert batch["attention_mask"][0].sum() < batch["attention_mask"].shape[1]  # the short one is padded
    with torch.no_grad():
        padded = model(**batch).logits[0]
        states = model.encoder(**alone).last_hidden_state[0]
        by_hand = model.classifier(states.mean(0))
    assert torch.allclose(padded, by_hand, atol=1e-5)  # padding changes nothing
    assert torch.allclose(model(**alone).logits[0], by_hand, atol=1e-5)


@pytest.mark.parametrize("head", ["mean", "pair"])
def test_mean_pooled_teacher_round_trips_through_its_artifact(tmp_path, head):
    from raykd.data.dataset import MULTICLASS, TaskSpec
    from raykd.heads import TaskLayout
    from raykd.teacher.artifact import TeacherScorer, save_teacher
    from raykd.teacher.model import tokenize

    cfg = ModelConfig(kind="encoder", tiny="bert", head=head, include_question=True)
    lora = LoraConfig(enabled=False)
    tok = build_tokenizer(cfg)
    layout = TaskLayout.of([TaskSpec("t", MULTICLASS, ("0", "1", "2"))])
    model = build_model(cfg, lora, layout.total, tok, on_gpu=False, seed=3).eval()
    row = (["plants need light"], ["What do plants need?"], ["Light and water."])
    with torch.no_grad():
        model.classifier.bias.copy_(torch.tensor([0.5, -1.0, 2.0]))  # trained weights, not the seeded ones
        expected = torch.softmax(model(**tokenize(tok, cfg, *row)).logits[0], -1)
    state = {k: v.detach().clone() for k, v in model.named_parameters()}
    save_teacher(tmp_path / "teacher", model_cfg=cfg, lora_cfg=lora, layout=layout, thresholds={}, trainable=state,
                 base=None, tokenizer=tok, parameters={"total": 1, "trainable": 1}, seed=3)
    scorer = TeacherScorer(tmp_path / "teacher", device="cpu")
    (probs,) = scorer.predict_proba(row[0], ["t"], row[1], row[2])
    assert probs == pytest.approx(expected.numpy(), abs=1e-5)


def test_mean_and_pair_heads_are_for_fully_fine_tuned_encoders():
    from raykd.config import from_dict
    from raykd.teacher.config import TeacherJobConfig

    with pytest.raises(ConfigError, match="model.head"):
        from_dict(TeacherJobConfig, {"model": {"kind": "llm", "tiny": "llama", "head": "mean"}})
    with pytest.raises(ConfigError, match="model.head"):
        from_dict(TeacherJobConfig, {"model": {"tiny": "bert", "head": "mean"}})  # tiny: LoRA on
    from_dict(TeacherJobConfig, {"model": {"head": "mean"}, "lora": {"enabled": False}})
    with pytest.raises(ConfigError, match="include_question"):
        from_dict(TeacherJobConfig, {"model": {"head": "pair"}, "lora": {"enabled": False}})


def test_pair_head_compares_the_answer_with_its_reference():
    from raykd.teacher.model import tokenize

    cfg = ModelConfig(kind="encoder", tiny="bert", head="pair", include_question=True)
    tok = build_tokenizer(cfg)
    model = build_model(cfg, LoraConfig(enabled=False), 2, tok, on_gpu=False).eval()
    assert model.classifier.in_features == 4 * model.config.hidden_size
    answers, questions = ["it evaporated", "the salt stayed"], ["How?", "What stayed?"]
    references = ["The water evaporated.", None]  # no reference answer: the question is the reference side
    batch = tokenize(tok, cfg, answers, questions, references)
    assert tok.decode(batch["input_ids"][0], skip_special_tokens=True) == "it evaporated"  # the answer alone
    sides = [tok.decode(ids, skip_special_tokens=True) for ids in batch["pair_input_ids"]]
    assert sides == ["the water evaporated.", "what stayed?"]
    with torch.no_grad():
        logits = model(**batch).logits
        u = model.pool(**tok(["it evaporated"], return_tensors="pt"))[0]
        v = model.pool(**tok(["The water evaporated."], return_tensors="pt"))[0]
        by_hand = model.classifier(torch.cat([u, v, (u - v).abs(), u * v]))
    assert torch.allclose(logits[0], by_hand, atol=1e-5)


def test_a_continuous_head_starts_at_the_training_scores_mean_and_spread():
    """ASAP-style 0-3 in halves: gold [1, 2, 3] -> z_mean (2 - 0) / 3, z_sd log(std([1, 2, 3]) / 3), hand-computed;
    a class task beside it and unscored rows are left alone; the MiniLM teacher's head (also its LoRA copy, when
    LoRA wraps it) starts there, so its first prediction is the average score, not the bottom of the range."""
    import math

    from raykd.data.dataset import CONTINUOUS, MULTICLASS, TaskSpec
    from raykd.heads import TaskLayout, continuous_start, gaussian
    from raykd.teacher.model import start_head

    layout = TaskLayout.of([TaskSpec("cls", MULTICLASS, ("0", "1", "2")),
                            TaskSpec("mean", CONTINUOUS, ("mean", "sd"), low=0.0, high=3.0, step=0.5)])
    start = continuous_start(layout, ["mean", "cls", "mean", "mean", "mean"], [1.0, 2, 2.0, 3.0, None])
    assert start == pytest.approx({3: 2 / 3, 4: math.log(math.sqrt(2 / 3) / 3)})
    cfg = ModelConfig(kind="encoder", name_or_path="minilm", max_length=16)
    model = build_model(cfg, LoraConfig(enabled=False), layout.total, build_tokenizer(cfg), on_gpu=False, seed=0)
    assert start_head(model, layout.total, start) >= 1
    with torch.no_grad():
        ids = build_tokenizer(cfg)(["water"], return_tensors="pt")
        model.eval()
        out = model(**ids).logits[0, 3:5].numpy()
    bias_only = gaussian(torch.tensor(list(start.values())).numpy(), layout.spec("mean"))
    assert abs(gaussian(out, layout.spec("mean"))[0] - bias_only[0]) < 0.5  # near 2.0, far from 0


def test_dropout_set_for_training_reaches_every_layer():
    from raykd.data.dataset import TaskSpec
    from raykd.heads import TaskLayout
    from raykd.teacher.model import training_dropout

    cfg = ModelConfig(kind="encoder", tiny="bert", dropout=0.0)
    model = build_model(cfg, LoraConfig(enabled=False), 2, build_tokenizer(cfg), on_gpu=False).train()
    assert {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)} == {0.0}
    assert model.config.hidden_dropout_prob == model.config.attention_probs_dropout_prob == 0.0
    ids = torch.tensor([[101, 2000, 2001, 102]])
    with torch.no_grad():  # in training mode, yet no dropout: two passes agree
        assert torch.equal(model(input_ids=ids).logits, model(input_ids=ids).logits)
    # An LLM keeps its attention dropout as a number; LoRA's adapters keep lora.dropout.
    llm = ModelConfig(kind="llm", tiny="llama", dropout=0.25)
    lora = build_model(llm, LoraConfig(r=4, alpha=8, dropout=0.05), 3, build_tokenizer(llm), on_gpu=False)
    numbers = {m.attention_dropout for m in lora.modules() if isinstance(getattr(m, "attention_dropout", None),
                                                                            float)}
    assert numbers == {0.25}
    assert {m.p for n, m in lora.named_modules() if "lora_dropout" in n and isinstance(m, torch.nn.Dropout)} \
        == {0.05}
    # The default: the backbone's own for class tasks, none for a continuous task.
    scores = TaskLayout.of([TaskSpec("s", "multiclass", ("0", "1"))])
    mean = TaskLayout.of([TaskSpec("c", "continuous", low=0, high=3)])
    assert training_dropout(ModelConfig(), scores) is None and training_dropout(ModelConfig(), mean) == 0.0
    assert training_dropout(ModelConfig(dropout=0.1), mean) == 0.1
    with pytest.raises(ConfigError, match="dropout"):
        ModelConfig(dropout=1.0)
