"""Knowledge-distillation objectives, as small functions of logits and teacher probabilities.

Hard (gold) term, per task:
  hard_loss        CE(softmax(z), y) for multi-class, mean per-label BCE(sigmoid(z), y) for multi-label
                   (optional weight: per-class w_c, CE = sum_i w_yi CE_i / sum_i w_yi, for skewed scores;
                   per-label pos_weight = negatives / positives for multi-label)
  gaussian_hard    continuous tasks, outputs z = (mu, log s), gold y, all in units of the task's range:
                   (mu - y)^2 + log s + (y - sg(mu))^2 / (2 s^2)
                   squared error for the score, the Gaussian NLL for the spread against the mean held fixed
                   (sg: stop-gradient), so a wide spread cannot excuse a wrong mean

Soft terms (`p` teacher, `q` student, both over a task's classes; all averaged over the batch):
  soft_ce          -sum p_T log q_T                       cross-entropy against tempered teacher probs
  forward_kl       KL(p_T || q_T)                         the classic Hinton KD term
  reverse_kl       KL(q_T || p_T)                         mode-seeking
  skew_kl          KL(p_T || a p_T + (1-a) q_T)           DistiLLM's skew KL (alpha = a)
  skew_reverse_kl  KL(q_T || a q_T + (1-a) p_T)           DistiLLM's skew reverse KL
  bernoulli_kd     per-label BCE(sigmoid(z/T), p_T)        multi-label tasks: each label its own Bernoulli
  gaussian_kd      (mu - m_T)^2 + KL(N(m_T, s_T^2) || N(sg(mu), s^2))      continuous tasks, the teacher's
                   mean and spread: KL = log(s / s_T) + (s_T^2 + (m_T - sg(mu))^2) / (2 s^2) - 1/2; no T
Every soft term but gaussian_kd is multiplied by T^2 so its gradients keep their scale as T changes (Hinton et al.).
Teacher probabilities are tempered as softmax(log p / T) (multi-class) or sigmoid(logit(p) / T) (labels).

Knowledge tracing (per step t of a learner's sequence, over the valid steps V; z_t the student's next-step
logit, m_t its logits for every skill, y_t gold correctness, p_t / P_t the teacher's next-step / every-skill
probabilities):
  sequence_kd      mean_V BCE(z_t, y_t) + lam * (bernoulli_kd(z_V, p_V) + mu * bernoulli_kd(m_V, P_V))
                   gold BCE plus lambda times per-label Bernoulli KD on the next step and on mastery

Mixing with the hard (gold) loss:
  convex_mix(hard, soft, lam)    = (1 - lam) * hard + lam * soft      lam in [0, 1]; lam = 0 is plain CE
  additive_mix(hard, soft, lam)  = hard + lam * soft                   arXiv 2312.15842's form: gold CE
                                                                       plus lambda times CE against the
                                                                       teacher's probabilities
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-7
LOG_SD_CLIP = 10.0  # as raykd.heads: spreads of exp(+-10) ranges at most


def hard_loss(logits: torch.Tensor, target: torch.Tensor, kind: str,
              weight: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy against gold: softmax CE (class index; `weight` per class) or per-label BCE (0/1 matrix;
    `weight` is the per-label pos_weight); for a continuous task `gaussian_hard` (gold in units of its range)."""
    if kind == "multiclass":
        return F.cross_entropy(logits, target.long(), weight=weight)
    if kind == "continuous":
        return gaussian_hard(logits, target)
    return F.binary_cross_entropy_with_logits(logits, target.float(), pos_weight=weight)


def temper_probs(p: torch.Tensor, temperature: float) -> torch.Tensor:
    """Teacher class probabilities at temperature T: softmax(log p / T)."""
    if temperature == 1.0:
        return p
    return F.softmax(torch.log(p.clamp_min(EPS)) / temperature, dim=-1)


def temper_label_probs(p: torch.Tensor, temperature: float) -> torch.Tensor:
    """Teacher per-label probabilities at temperature T: sigmoid(logit(p) / T)."""
    if temperature == 1.0:
        return p
    p = p.clamp(EPS, 1 - EPS)
    return torch.sigmoid(torch.log(p / (1 - p)) / temperature)


def _kl(p: torch.Tensor, log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    return (p * (log_p - log_q)).sum(-1).mean()


def soft_ce(logits: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    p = temper_probs(teacher, temperature)
    return -(p * F.log_softmax(logits / temperature, dim=-1)).sum(-1).mean() * temperature**2


def forward_kl(logits: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    p = temper_probs(teacher, temperature)
    return _kl(p, torch.log(p.clamp_min(EPS)), F.log_softmax(logits / temperature, dim=-1)) * temperature**2


def reverse_kl(logits: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    p = temper_probs(teacher, temperature)
    log_q = F.log_softmax(logits / temperature, dim=-1)
    return _kl(log_q.exp(), log_q, torch.log(p.clamp_min(EPS))) * temperature**2


def skew_kl(logits: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0,
            alpha: float = 0.1) -> torch.Tensor:
    p = temper_probs(teacher, temperature)
    q = F.softmax(logits / temperature, dim=-1)
    mix = alpha * p + (1 - alpha) * q
    return _kl(p, torch.log(p.clamp_min(EPS)), torch.log(mix.clamp_min(EPS))) * temperature**2


def skew_reverse_kl(logits: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0,
                    alpha: float = 0.1) -> torch.Tensor:
    p = temper_probs(teacher, temperature)
    log_q = F.log_softmax(logits / temperature, dim=-1)
    q = log_q.exp()
    mix = alpha * q + (1 - alpha) * p
    return _kl(q, log_q, torch.log(mix.clamp_min(EPS))) * temperature**2


def bernoulli_kd(logits: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Multi-label KD: per-label sigmoid BCE against the teacher's label probabilities, times T^2."""
    p = temper_label_probs(teacher, temperature)
    return F.binary_cross_entropy_with_logits(logits / temperature, p) * temperature**2


def _mean_and_log_sd(outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return outputs[:, 0], outputs[:, 1].clamp(-LOG_SD_CLIP, LOG_SD_CLIP)


def gaussian_hard(outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Continuous gold loss of the module docstring; `outputs` [B, 2] (mu, log s), `target` [B]."""
    mu, log_s = _mean_and_log_sd(outputs)
    y = target.to(mu.dtype)
    nll = log_s + (y - mu.detach()) ** 2 / (2 * torch.exp(2 * log_s))
    return ((mu - y) ** 2 + nll).mean()


def gaussian_kd(outputs: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Continuous KD term of the module docstring; `teacher` [B, 2] holds (m_T, s_T) in units of the range."""
    mu, log_s = _mean_and_log_sd(outputs)
    m_t, s_t = teacher[:, 0].to(mu.dtype), teacher[:, 1].to(mu.dtype).clamp_min(EPS)
    kl = log_s - torch.log(s_t) + (s_t**2 + (m_t - mu.detach()) ** 2) / (2 * torch.exp(2 * log_s)) - 0.5
    return ((mu - m_t) ** 2 + kl).mean()


def sequence_kd(next_logits: torch.Tensor, gold: torch.Tensor, valid: torch.Tensor, lam: float = 0.0,
                teacher_next: torch.Tensor | None = None, mastery_logits: torch.Tensor | None = None,
                teacher_mastery: torch.Tensor | None = None, temperature: float = 1.0,
                mu: float = 0.0) -> torch.Tensor:
    """Knowledge-tracing loss of the module docstring. `next_logits`, `gold`, `teacher_next`, `valid`: [B, T];
    `mastery_logits`, `teacher_mastery`: [B, T, S]; lam = 0 is the no-KD twin."""
    hard = F.binary_cross_entropy_with_logits(next_logits[valid], gold[valid].float())
    if lam == 0 or teacher_next is None:
        return hard
    soft = bernoulli_kd(next_logits[valid], teacher_next[valid], temperature)
    if mu and mastery_logits is not None and teacher_mastery is not None:
        soft = soft + mu * bernoulli_kd(mastery_logits[valid], teacher_mastery[valid].float(), temperature)
    return hard + lam * soft


OBJECTIVES = {"soft_ce": soft_ce, "forward_kl": forward_kl, "reverse_kl": reverse_kl,
              "skew_kl": skew_kl, "skew_reverse_kl": skew_reverse_kl}


def soft_loss(logits: torch.Tensor, teacher: torch.Tensor, kind: str, objective: str = "soft_ce",
              temperature: float = 1.0, skew_alpha: float = 0.1) -> torch.Tensor:
    """The KD term for one task: `objective` for multi-class tasks, Bernoulli KD for multi-label ones, Gaussian
    KD for continuous ones (teacher in units of the range)."""
    if kind == "multilabel":
        return bernoulli_kd(logits, teacher, temperature)
    if kind == "continuous":
        return gaussian_kd(logits, teacher)
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown KD objective {objective!r}; choose one of {sorted(OBJECTIVES)}")
    if objective.startswith("skew"):
        return OBJECTIVES[objective](logits, teacher, temperature, skew_alpha)
    return OBJECTIVES[objective](logits, teacher, temperature)


def convex_mix(hard: torch.Tensor, soft: torch.Tensor, lam: float) -> torch.Tensor:
    return (1 - lam) * hard + lam * soft


def additive_mix(hard: torch.Tensor, soft: torch.Tensor, lam: float) -> torch.Tensor:
    return hard + lam * soft


def mix(hard: torch.Tensor, soft: torch.Tensor, lam: float, how: str = "convex") -> torch.Tensor:
    if how == "convex":
        return convex_mix(hard, soft, lam)
    if how == "additive":
        return additive_mix(hard, soft, lam)
    raise ValueError(f"unknown mix {how!r}; choose convex or additive")


def load_balance(gate_probs: torch.Tensor) -> torch.Tensor:
    """Mixture-of-experts balance penalty: N * sum_i (mean gate prob of expert i)^2 - 1.

    It is 0 when the batch's routing mass is spread evenly over the N experts and grows to N - 1 when
    one expert takes it all (a soft-routing form of the Switch Transformer auxiliary loss).
    """
    n = gate_probs.shape[-1]
    importance = gate_probs.reshape(-1, n).mean(0)
    return n * (importance**2).sum() - 1
