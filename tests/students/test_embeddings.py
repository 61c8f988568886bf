"""Teacher-initialised student embeddings: PCA of the teacher's rows for the student's pieces."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from raykd.config import ConfigError, from_dict
from raykd.data import TaskSpec
from raykd.distill.config import DistillJobConfig, StudentConfig
from raykd.heads import TaskLayout
from raykd.students.architectures import make_model
from raykd.students.embeddings import init_from_teacher, reduce_embeddings
from raykd.students.vocab import Vocabulary
from raykd.tune.config import TuneJobConfig


def test_reduced_rows_keep_the_teachers_geometry():
    # Three pieces on a plane inside 4 dimensions: two components keep every distance, up to one scale.
    teacher = np.array([[0, 0, 0, 0], [9, 9, 9, 9], [1, 0, 2, 0], [4, 0, 1, 0], [0, 0, 5, 0], [7, 7, 7, 7]], float)
    index = {"[PAD]": 0, "[UNK]": 1, "a": 2, "b": 3, "c": 4, "unused": 5}
    vocab = Vocabulary(["<pad>", "<unk>", "c", "a", "b"], mode="wordpiece")
    e = reduce_embeddings(teacher, index, 1, vocab, dim=3).numpy()
    assert e.shape == (5, 3)
    assert np.all(e[0] == 0)  # padding stays zero
    np.testing.assert_allclose(e[2:, 2], 0, atol=1e-9)  # 3 centred rows span only 2 directions
    np.testing.assert_allclose(e[2:].std(), 1.0, rtol=1e-6)

    def d(x, y):
        return np.linalg.norm(x - y)

    t = {k: teacher[index[k]] for k in "abc"}
    s = {k: e[vocab.index[k]] for k in "abc"}
    np.testing.assert_allclose(d(s["a"], s["b"]) / d(s["a"], s["c"]), d(t["a"], t["b"]) / d(t["a"], t["c"]))
    # <unk> is the teacher's unknown row, projected the same way (it lies far from the pieces' plane).
    assert d(e[1], s["a"]) > d(s["a"], s["c"])


def test_a_piece_the_teacher_lacks_is_an_error():
    vocab = Vocabulary(["<pad>", "<unk>", "a", "zebra"], mode="wordpiece")
    with pytest.raises(ValueError, match="zebra"):
        reduce_embeddings(np.eye(3), {"a": 0, "b": 1, "c": 2}, None, vocab, dim=2)


def test_teacher_embeddings_need_the_teachers_subwords():
    with pytest.raises(ConfigError, match="config.student.init_embeddings"):
        from_dict(TuneJobConfig, {"student": {"init_embeddings": "teacher"}})
    StudentConfig(init_embeddings="teacher", tokenizer="wordpiece")
    with pytest.raises(ConfigError, match=r"config.students.s.hidden: must be >= 1, got 0"):
        from_dict(DistillJobConfig, {"students": {"s": {"hidden": 0}}})


@pytest.mark.parametrize("arch", ["lstm", "moe"])
def test_student_starts_from_the_saved_teachers_embeddings(tiny_teacher, arch):
    from raykd.students.embeddings import teacher_token_embeddings
    model_dir = str(tiny_teacher.model_dir)
    vocab = Vocabulary.build(["acid rain reacts with marble", "the marble mass decreases"], min_freq=1,
                             mode="wordpiece", tokenizer_path=f"{model_dir}/tokenizer")
    layout = TaskLayout.of([TaskSpec("asap_1", "multiclass", ("0", "1", "2", "3"))])
    model = make_model(StudentConfig(arch=arch, embed_dim=4), len(vocab), layout)
    before = model.token_embedding.weight.detach().clone()
    init_from_teacher(model, vocab, model_dir)
    weight, index, unk, sep = teacher_token_embeddings(model_dir)
    expected = reduce_embeddings(weight, index, unk, vocab, 4, sep=sep)
    assert not torch.equal(before, expected)
    torch.testing.assert_close(model.token_embedding.weight.detach(), expected)
