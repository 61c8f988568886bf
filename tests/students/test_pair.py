"""The pair student: its two sides, its pooling and its comparison features, against hand computations."""

from __future__ import annotations

import pytest
import torch

from raykd.config import ConfigError, from_dict
from raykd.data import TaskSpec
from raykd.distill.config import DistillJobConfig, StudentConfig
from raykd.heads import TaskLayout
from raykd.inputs import SEP, model_inputs
from raykd.students.architectures import make_model
from raykd.students.lstm import pool
from raykd.students.pair import side_masks
from raykd.students.vocab import SEP_ID, Vocabulary

TWO_WAY = TaskLayout.of([TaskSpec("two_way", "multiclass", ("incorrect", "correct"))])


def test_pair_inputs_put_the_response_first_and_the_reference_answers_after_the_separator():
    got = model_inputs(["it grows"], ["Why?"], ["It gets light\nIt has water"], pair=True)
    assert got == [f"it grows {SEP} It gets light It has water"]
    assert model_inputs(["it grows"], ["Why?"], [None], pair=True) == [f"it grows {SEP} Why?"]  # no reference
    assert model_inputs(["it grows"], ["Why?"], ["light"], overlap=True, pair=True)[0].startswith("xxrecall")
    assert model_inputs([f"a {SEP} b"], [None], ["c"], pair=True)[0].count(SEP) == 1  # typed in: not a side


@pytest.mark.parametrize("mode", ["words", "wordpiece"])
def test_the_separator_is_one_token_at_its_reserved_id(mode, tmp_path):
    path = None
    if mode == "wordpiece":
        from raykd.teacher.config import ModelConfig
        from raykd.teacher.model import build_tokenizer

        build_tokenizer(ModelConfig()).save_pretrained(tmp_path / "tok")
        path = str(tmp_path / "tok")
    texts = [f"plants need light {SEP} light energy", f"water {SEP} the sun"]
    vocab = Vocabulary.build(texts, min_freq=1, mode=mode, tokenizer_path=path, reserved=[SEP])
    assert vocab.tokens[SEP_ID] == SEP
    split = vocab.split(texts[0])
    assert split.count(SEP) == 1 and "sep" not in split and "<" not in split
    assert vocab.ids(texts, 32)[1][1] == SEP_ID  # "water" is one piece either way


def test_side_masks_split_at_the_first_and_second_separator():
    ids = torch.tensor([[5, 6, SEP_ID, 7, 8, 0],
                        [5, 6, 7, 0, 0, 0],  # no separator: all response
                        [SEP_ID, 7, SEP_ID, 9, 0, 0]])  # a second separator ends the reference side
    response, reference = side_masks(ids)
    assert response.int().tolist() == [[1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0]]
    assert reference.int().tolist() == [[0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0]]


def test_pool_is_the_mean_of_masked_mean_and_masked_max_and_zero_when_empty():
    states = torch.tensor([[[1.0, -2.0], [3.0, 4.0], [100.0, 100.0]]])
    got = pool(states, torch.tensor([[True, True, False]]))
    # mean (2, 1), max (3, 4): ((2 + 3) / 2, (1 + 4) / 2)
    torch.testing.assert_close(got, torch.tensor([[2.5, 2.5]]))
    torch.testing.assert_close(pool(states, torch.tensor([[False, False, False]])), torch.zeros(1, 2))


def test_logits_are_a_linear_map_of_u_v_their_distance_and_product():
    torch.manual_seed(0)
    model = make_model(StudentConfig(arch="pair", hidden=4, embed_dim=3), 20, TWO_WAY).eval()
    ids = torch.tensor([[4, 5, SEP_ID, 6, 7, 8], [9, 10, 11, SEP_ID, 12, 0]])
    with torch.no_grad():
        states = model.states(ids)
        u = torch.stack([(states[0, :2].mean(0) + states[0, :2].max(0).values) / 2,
                         (states[1, :3].mean(0) + states[1, :3].max(0).values) / 2])
        v = torch.stack([(states[0, 3:6].mean(0) + states[0, 3:6].max(0).values) / 2,
                         (states[1, 4:5].mean(0) + states[1, 4:5].max(0).values) / 2])
        expected = torch.cat([u, v, (u - v).abs(), u * v], -1) @ model.head.weight.T + model.head.bias
        torch.testing.assert_close(model(ids)["logits"], expected)
        # The reference side is read: another reference gives other logits.
        other = ids.clone()
        other[0, 3:6] = torch.tensor([13, 14, 15])
        assert not torch.allclose(model(other)["logits"][0], expected[0])


def test_the_pair_student_reads_the_reference_not_include_question():
    StudentConfig(arch="pair")
    with pytest.raises(ConfigError, match=r"config.students.p.include_question: the pair student always reads"):
        from_dict(DistillJobConfig, {"students": {"p": {"arch": "pair", "include_question": True}}})
