import numpy as np
import pytest
import torch

from raykd.data import TaskSpec
from raykd.distill.config import DistillConfig, StudentConfig
from raykd.heads import TaskLayout
from raykd.inputs import SEP
from raykd.students.architectures import make_model
from raykd.students.artifact import StudentScorer, save_student
from raykd.students.vocab import Vocabulary

ASAP = TaskLayout.of([TaskSpec(f"asap_{s}", "multiclass", ("0", "1", "2", "3"), ordinal=True) for s in (1, 2, 5, 6)]
                     + [TaskSpec("asap_10", "multiclass", ("0", "1", "2"), ordinal=True)])


def test_lstm_student_is_in_the_papers_size_range():
    model = make_model(StudentConfig(), vocab_size=3000, layout=TaskLayout.of(ASAP.tasks[:1]))
    n = sum(p.numel() for p in model.parameters())
    assert 20_000 <= n <= 100_000  # arXiv 2312.15842: 0.02-0.1M parameters
    out = model(torch.randint(1, 3000, (5, 12)))
    assert out["logits"].shape == (5, 4)


def test_moe_student_gates_per_task_and_serves_all_heads():
    model = make_model(StudentConfig(arch="moe", vocab_size=4000, embed_dim=24, hidden=48), 4000, ASAP)
    n = sum(p.numel() for p in model.parameters())
    assert n < 0.01 * 22_700_000  # under 1% of the MiniLM teacher
    ids = torch.randint(1, 4000, (6, 10))
    tasks = torch.tensor([0, 1, 2, 3, 4, 0])
    out = model(ids, tasks)
    assert out["logits"].shape == (6, ASAP.total) and out["gate"].shape == (6, 4)
    torch.testing.assert_close(out["gate"].sum(-1), torch.ones(6))
    # The gate depends on the task: the same text routed for two tasks gets two routings.
    same = ids[:1].repeat(2, 1)
    g = model.eval()(same, torch.tensor([0, 4]))["gate"]
    assert not torch.allclose(g[0], g[1])
    with pytest.raises(ValueError, match="task id"):
        model(ids)


def test_vocabulary_is_deterministic_and_handles_unknowns():
    texts = ["The acid reacts with marble", "the ACID reacts fast", "marble and limestone"]
    a, b = Vocabulary.build(texts, min_freq=1), Vocabulary.build(list(reversed(texts)), min_freq=1)
    assert a.tokens == b.tokens and a.tokens[:3] == ["<pad>", "<unk>", "acid"]
    ids = a.encode(["acid zebra", ""], max_len=8)
    assert ids.tolist() == [[a.index["acid"], 1], [1, 0]]


def test_wordpiece_vocabulary_from_the_teacher_tokenizer(tmp_path):
    from raykd.teacher.model import minilm_path

    v = Vocabulary.build(["photosynthesis makes glucose", "photosynthesis again"], min_freq=1, mode="wordpiece",
                         tokenizer_path=minilm_path())
    assert "##thesis" in v.tokens or "photosynthesis" in v.tokens
    assert len(v) < 20  # only the pieces seen in training
    v.save(tmp_path)
    again = Vocabulary.load(tmp_path)
    assert again.encode(["photosynthesis"], 8).tolist() == v.encode(["photosynthesis"], 8).tolist()


def test_saved_student_predicts_without_training_state(tmp_path):
    layout = TaskLayout.of([ASAP.spec("asap_1"), ASAP.spec("asap_2")])
    vocab = Vocabulary.build(["acid rain on marble", "polymer stretch test"], min_freq=1)
    model = make_model(StudentConfig(arch="moe"), len(vocab), layout).eval()
    path = save_student(tmp_path / "s", model, "moe", vocab, layout, {}, max_len=16, extra={"kd_weight": 0.5})
    scorer = StudentScorer(path)
    probs = scorer.predict_proba(["acid rain", "stretch"], ["asap_1", "asap_2"])
    with torch.no_grad():
        direct = torch.softmax(model(vocab.encode(["acid rain"], 16), torch.tensor([0]))["logits"][0, :4], -1)
    np.testing.assert_allclose(probs[0], direct.numpy(), atol=1e-6)
    assert all(abs(p.sum() - 1) < 1e-5 for p in probs)
    assert scorer.manifest["tasks"][0]["labels"] == ["0", "1", "2", "3"]


def test_distill_config_rejects_bad_lambda():
    from raykd.errors import ConfigError

    with pytest.raises(ConfigError, match="kd_weight"):
        DistillConfig(kd_weight=1.5)


@pytest.mark.parametrize("arch", ["lstm", "moe", "pair"])
def test_scores_do_not_depend_on_batch_padding(arch):
    model = make_model(StudentConfig(arch=arch), 50, TaskLayout.of(ASAP.tasks[:1])).eval()
    short = torch.tensor([[5, 2, 7]])  # 2: the pair student's <sep>
    padded = torch.tensor([[5, 2, 7, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6, 7]])
    task = torch.tensor([0])
    with torch.no_grad():
        alone = model(short, task)["logits"][0]
        batched = model(padded, torch.tensor([0, 0]))["logits"][0]
    torch.testing.assert_close(alone, batched, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("arch", "overrides"), [
    ("lstm", {}), ("lstm", {"layers": 2}), ("lstm", {"bidirectional": False, "hidden": 8}),
    ("moe", {}), ("moe", {"num_experts": 2, "expert_hidden": 16}),
    ("pair", {}), ("pair", {"bidirectional": False, "hidden": 8}),
])
def test_onnx_graph_equals_the_torch_student(arch, overrides):
    """The hand-written ONNX graph computes what the PyTorch module computes, padding and all."""
    from raykd.students.onnx import OnnxStudent

    torch.manual_seed(0)
    layout = TaskLayout.of(ASAP.tasks[:3])
    model = make_model(StudentConfig(arch=arch, **overrides), 60, layout).eval()
    ids = torch.randint(1, 60, (9, 14))
    for row, length in enumerate([14, 1, 3, 7, 14, 2, 9, 5, 11]):
        ids[row, length:] = 0  # ragged, right-padded rows as Vocabulary.encode makes them
    ids[ids == 2] = 3
    ids[0, 5] = ids[3, 6] = ids[4, 0] = ids[6, 3] = ids[6, 7] = ids[7, 4] = 2  # pair sides: one, none, two <sep>
    tasks = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2])
    with torch.no_grad():
        expected = model(ids, tasks)["logits"].numpy()
    got = OnnxStudent(model).logits(ids.numpy(), tasks.numpy())
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", ["lstm", "moe", "pair"])
def test_scorer_backends_agree_for_any_batching(arch, tmp_path):
    """ONNX and PyTorch scorers give the same probabilities, whatever the chunking and order of a batch."""
    texts = ["acid rain on marble", "the polymer stretched", "", "marble " * 40, "acid", "rain rain polymer"] * 5
    layout = TaskLayout.of([ASAP.spec("asap_1"), ASAP.spec("asap_10")])
    tasks = ["asap_1", "asap_10", "asap_1"] * 10
    refs = ["marble dissolves in acid", None, "acid rain\nthe polymer"] * 10  # read by the pair student only
    vocab = Vocabulary.build(texts + ["marble dissolves"], min_freq=1, reserved=[SEP] if arch == "pair" else [])
    torch.manual_seed(1)
    model = make_model(StudentConfig(arch=arch), len(vocab), layout).eval()
    path = save_student(tmp_path / "s", model, arch, vocab, layout, {}, max_len=32)
    onnx_scorer, torch_scorer = StudentScorer(path, backend="onnx"), StudentScorer(path, backend="torch")
    assert onnx_scorer.backend == "onnx" and torch_scorer.backend == "torch"
    reference = np.concatenate(torch_scorer.predict_proba(texts, tasks, None, refs, batch_size=64))
    for scorer, batch in ((onnx_scorer, 64), (onnx_scorer, 4), (torch_scorer, 1)):
        np.testing.assert_allclose(np.concatenate(scorer.predict_proba(texts, tasks, None, refs, batch_size=batch)),
                                   reference, atol=1e-5)
    one = [onnx_scorer.predict_proba([t], [k], None, [r])[0] for t, k, r in zip(texts[:6], tasks[:6], refs[:6],
                                                                                strict=True)]
    np.testing.assert_allclose(np.concatenate(one), np.concatenate(reference_split(reference, tasks, layout)[:6]),
                               atol=1e-5)


def reference_split(flat: np.ndarray, tasks: list[str], layout: TaskLayout) -> list[np.ndarray]:
    out, at = [], 0
    for t in tasks:
        n = layout.spec(t).num_outputs
        out.append(flat[at:at + n])
        at += n
    return out
