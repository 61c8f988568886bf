"""Each KD loss against hand-computed values, with finite gradients; lambda = 0 is plain cross-entropy."""

import math

import pytest
import torch
import torch.nn.functional as F

from raykd.distill import losses

# Student logits log([0.5, 0.25, 0.25]) -> q = [0.5, 0.25, 0.25]; teacher p = [0.25, 0.5, 0.25].
Q = [0.5, 0.25, 0.25]
P = [0.25, 0.5, 0.25]


def logits():
    return torch.log(torch.tensor([Q])).requires_grad_(True)


def teacher():
    return torch.tensor([P])


def kl(a, b):
    return sum(x * math.log(x / y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (losses.soft_ce, -sum(p * math.log(q) for p, q in zip(P, Q, strict=True))),
        (losses.forward_kl, kl(P, Q)),
        (losses.reverse_kl, kl(Q, P)),
        (lambda z, t: losses.skew_kl(z, t, alpha=0.1), kl(P, [0.1 * p + 0.9 * q for p, q in zip(P, Q, strict=True)])),
        (lambda z, t: losses.skew_reverse_kl(z, t, alpha=0.1),
         kl(Q, [0.1 * q + 0.9 * p for p, q in zip(P, Q, strict=True)])),
    ],
)
def test_soft_terms_hand_computed(fn, expected):
    z = logits()
    value = fn(z, teacher())
    assert value.item() == pytest.approx(expected, rel=1e-5)
    value.backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


def test_soft_ce_equals_kl_plus_teacher_entropy():
    z, t = logits(), teacher()
    entropy = -sum(p * math.log(p) for p in P)
    assert losses.soft_ce(z, t).item() == pytest.approx(losses.forward_kl(z, t).item() + entropy, rel=1e-5)


def test_temperature_scaling():
    # At T=2 the teacher is tempered as softmax(log p / 2) = sqrt(p) renormalised, and the term is times T^2.
    z, t = logits(), teacher()
    pt = [math.sqrt(p) for p in P]
    pt = [x / sum(pt) for x in pt]
    qt = [math.sqrt(q) for q in Q]
    qt = [x / sum(qt) for x in qt]
    assert losses.forward_kl(z, t, temperature=2.0).item() == pytest.approx(4 * kl(pt, qt), rel=1e-5)
    assert losses.temper_probs(t, 2.0).sum().item() == pytest.approx(1.0)


def test_zero_kl_when_student_matches_teacher():
    z = torch.log(teacher()).requires_grad_(True)
    assert losses.forward_kl(z, teacher()).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.reverse_kl(z, teacher()).item() == pytest.approx(0.0, abs=1e-6)


def test_bernoulli_kd_hand_computed():
    z = torch.tensor([[0.0, math.log(3.0)]], requires_grad=True)  # q = [0.5, 0.75]
    p = torch.tensor([[0.8, 0.25]])
    expected = -(0.8 * math.log(0.5) + 0.2 * math.log(0.5) + 0.25 * math.log(0.75) + 0.75 * math.log(0.25)) / 2
    value = losses.bernoulli_kd(z, p)
    assert value.item() == pytest.approx(expected, rel=1e-5)
    value.backward()
    assert torch.isfinite(z.grad).all()
    # T=2: logit(p)/2 and z/2, times 4.
    p2 = torch.sigmoid(torch.logit(p) / 2)
    expected2 = 4 * F.binary_cross_entropy_with_logits(z.detach() / 2, p2).item()
    assert losses.bernoulli_kd(z, p, temperature=2.0).item() == pytest.approx(expected2, rel=1e-5)
    assert losses.soft_loss(z, p, "multilabel", "reverse_kl").item() == pytest.approx(expected, rel=1e-5)


def test_mixes_and_lambda_zero_is_plain_ce():
    z, t = logits(), teacher()
    target = torch.tensor([1])
    hard = F.cross_entropy(z, target)
    soft = losses.soft_ce(z, t)
    assert losses.convex_mix(hard, soft, 0.0).item() == pytest.approx(hard.item())
    assert losses.additive_mix(hard, soft, 0.0).item() == pytest.approx(hard.item())
    assert losses.convex_mix(hard, soft, 0.3).item() == pytest.approx(0.7 * hard.item() + 0.3 * soft.item())
    assert losses.additive_mix(hard, soft, 0.3).item() == pytest.approx(hard.item() + 0.3 * soft.item())
    assert losses.mix(hard, soft, 1.0, "convex").item() == pytest.approx(soft.item())
    with pytest.raises(ValueError, match="unknown mix"):
        losses.mix(hard, soft, 0.5, "geometric")


def test_load_balance():
    assert losses.load_balance(torch.full((8, 4), 0.25)).item() == pytest.approx(0.0, abs=1e-6)
    onehot = torch.zeros(8, 4)
    onehot[:, 2] = 1
    assert losses.load_balance(onehot).item() == pytest.approx(3.0)
    g = torch.softmax(torch.randn(8, 4, requires_grad=True), -1)
    losses.load_balance(g).backward()


def test_unknown_objective():
    with pytest.raises(ValueError, match="unknown KD objective"):
        losses.soft_loss(logits(), teacher(), "multiclass", "js")


def test_weighted_hard_loss_hand_computed():
    # Two rows, q = [0.5, 0.25, 0.25] each, gold 0 and 1, class weights [1, 3, 1]:
    # (1 * -log 0.5 + 3 * -log 0.25) / (1 + 3).
    z = torch.log(torch.tensor([Q, Q]))
    got = losses.hard_loss(z, torch.tensor([0, 1]), "multiclass", torch.tensor([1.0, 3.0, 1.0]))
    assert got.item() == pytest.approx((-math.log(0.5) - 3 * math.log(0.25)) / 4, rel=1e-6)


def test_sequence_kd_hand_computed():
    # One learner, 3 steps, 2 skills; the last step is padding (valid False) and must not count.
    z = torch.tensor([[0.0, math.log(3.0), 5.0]])  # next-step q = 0.5, 0.75, (ignored)
    y = torch.tensor([[1.0, 0.0, 1.0]])
    valid = torch.tensor([[True, True, False]])
    p = torch.tensor([[0.8, 0.25, 0.9]])
    m = torch.zeros(1, 3, 2)  # mastery q = 0.5 everywhere
    pm = torch.tensor([[[0.5, 0.5], [1.0, 0.0], [0.3, 0.3]]])
    gold = -(math.log(0.5) + math.log(0.25)) / 2
    kd_next = -(0.8 * math.log(0.5) + 0.2 * math.log(0.5) + 0.25 * math.log(0.75) + 0.75 * math.log(0.25)) / 2
    kd_mastery = -math.log(0.5)  # BCE(0.5, p) = log 2 whatever p is
    assert losses.sequence_kd(z, y, valid).item() == pytest.approx(gold, rel=1e-5)
    assert losses.sequence_kd(z, y, valid, lam=0.0, teacher_next=p).item() == pytest.approx(gold, rel=1e-5)
    assert losses.sequence_kd(z, y, valid, 0.5, p).item() == pytest.approx(gold + 0.5 * kd_next, rel=1e-5)
    value = losses.sequence_kd(z, y, valid, 0.5, p, m, pm, mu=0.1)
    assert value.item() == pytest.approx(gold + 0.5 * (kd_next + 0.1 * kd_mastery), rel=1e-5)


def test_gaussian_hard_by_hand():
    # mu 0.5, log s 0 (s 1), y 0.7: (0.2)^2 + 0 + 0.2^2 / 2 = 0.04 + 0.02 = 0.06.
    # mu 0.1, log s ln 0.5, y 0.1: 0 + ln 0.5 + 0 = -0.6931. Mean: (0.06 - 0.6931) / 2.
    out = torch.tensor([[0.5, 0.0], [0.1, math.log(0.5)]], requires_grad=True)
    loss = losses.gaussian_hard(out, torch.tensor([0.7, 0.1]))
    assert loss.item() == pytest.approx((0.06 + math.log(0.5)) / 2, abs=1e-6)
    loss.backward()
    # The mean learns from the squared error alone: d/dmu0 of the batch mean = 2 (0.5 - 0.7) / 2 = -0.2.
    assert out.grad[0, 0].item() == pytest.approx(-0.2, abs=1e-6)
    assert losses.hard_loss(out, torch.tensor([0.7, 0.1]), "continuous").item() == pytest.approx(loss.item())


def test_gaussian_kd_by_hand():
    # Student mu 0.4, s 1; teacher m 0.6, s 0.5: (0.2)^2 + [ln(1/0.5) + (0.25 + 0.04) / 2 - 0.5] = 0.04 + 0.3381.
    out = torch.tensor([[0.4, 0.0]])
    teacher = torch.tensor([[0.6, 0.5]])
    expected = 0.04 + math.log(2) + 0.29 / 2 - 0.5
    assert losses.gaussian_kd(out, teacher).item() == pytest.approx(expected, abs=1e-6)
    assert losses.soft_loss(out, teacher, "continuous").item() == pytest.approx(expected, abs=1e-6)
    # A student equal to its teacher pays nothing.
    assert losses.gaussian_kd(torch.tensor([[0.6, math.log(0.5)]]), teacher).item() == pytest.approx(0.0, abs=1e-6)
