"""Play a cohort with a simulator and compare it with the real one.

For each learner, walk their real skill sequence; at every attempt sample the answer from the model's
probability given the *simulated* history so far (the real answers are never shown to it). The model's state
restarts every `max_length` attempts, as it was trained on windows of that length.

Compared with the real cohort: the overall correct rate, per-skill correct rates (Pearson r over skills with at
least `min_attempts` attempts), and learning curves (correct rate at the k-th attempt of a learner on a skill).
`calibrate` fits a simulator's per-skill biases so that the training cohort it plays matches the real one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from raykd.kt.data import Sequence
from raykd.kt.models import DKT, KTIndex, make_batch
from raykd.kt.results import CalibrationRound, CohortComparison


def play(model: DKT, seqs: list[Sequence], index: KTIndex, seed: int, max_length: int
         ) -> list[np.ndarray]:
    """Simulated 0/1 answers for every learner, all learners stepped together."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    n, length = len(seqs), max(len(s) for s in seqs)
    batch = make_batch(seqs, index)
    skill, item = batch.skill, batch.item
    lengths = torch.as_tensor([len(s) for s in seqs])
    out = torch.zeros((n, length))
    hidden = model.lstm.hidden_size
    prior = model.out(torch.zeros(1, hidden))  # the model before any attempt
    with torch.no_grad():
        logits, state = prior.expand(n, -1), None
        for t in range(length):
            if t % max_length == 0:
                logits, state = prior.expand(n, -1), None
            active = t < lengths
            k = skill[:, t]
            q = None if item is None else item[:, t].unsqueeze(1)
            z = logits.gather(1, (k - 1).clamp_min(0).unsqueeze(1)).squeeze(1)
            if model.difficulty is not None and q is not None:
                z = z - model.difficulty(q).view(-1)
            p = torch.sigmoid(z)
            answer = (torch.rand(n, generator=gen) < p).float() * active
            out[:, t] = answer
            new_logits, new_state = model.step(k.unsqueeze(1), answer.unsqueeze(1), active.unsqueeze(1), state, q)
            if state is not None:  # learners past their last attempt keep their state
                keep = active.view(1, -1, 1)
                new_state = tuple(torch.where(keep, a, b) for a, b in zip(new_state, state, strict=True))
            state = new_state
            logits = torch.where(active.unsqueeze(1), new_logits[:, 0], logits)
    return [out[i, :len(s)].numpy().astype(np.int64) for i, s in enumerate(seqs)]


def skill_rates(seqs: list[Sequence], answers: list[np.ndarray], index: KTIndex
                ) -> tuple[np.ndarray, np.ndarray]:
    """Correct answers and attempts per model skill index (0-based): two arrays of length index.num_skills."""
    where = np.concatenate([[index.skill[int(k)] - 1 for k in s.skills] for s in seqs]).astype(np.int64)
    right = np.bincount(where, np.concatenate(answers).astype(float), minlength=index.num_skills)
    return right, np.bincount(where, minlength=index.num_skills).astype(float)


def calibrate(model: DKT, seqs: list[Sequence], index: KTIndex, max_length: int, rounds: int, seed: int,
              damping: float = 0.6, min_attempts: int = 20) -> list[CalibrationRound]:
    """Fit the simulator's per-skill output biases so that playing `seqs` (training learners) reproduces their
    per-skill correct rates. A model trained on real histories drifts when it reads its own sampled answers
    (a wrong answer it drew makes the next ones less likely, more than real learners' slips do), so played
    cohorts squeeze skill difficulties toward the middle. Each round plays the cohort once and moves skill s's
    bias by `damping * (logit(real_s) - logit(simulated_s))` (rates smoothed as (right + 1) / (attempts + 2);
    skills with fewer than `min_attempts` attempts keep theirs). Only training learners are read."""
    from scipy.special import logit
    from scipy.stats import pearsonr

    right, attempts = skill_rates(seqs, [s.correct for s in seqs], index)
    kept = attempts >= min_attempts
    real = (right + 1) / (attempts + 2)
    history = []
    for r in range(rounds):
        sim_right = skill_rates(seqs, play(model, seqs, index, seed + r, max_length), index)[0]
        sim = (sim_right + 1) / (attempts + 2)
        r_skills = float(pearsonr(real[kept], sim[kept])[0]) if kept.sum() > 2 else float("nan")
        history.append(CalibrationRound(r_skills, float(right.sum() / attempts.sum()),
                                        float(sim_right.sum() / attempts.sum())))
        shift = np.where(kept, damping * (logit(real) - logit(sim)), 0.0)
        with torch.no_grad():
            model.out.bias += torch.as_tensor(shift, dtype=model.out.bias.dtype)
    return history


def attempt_numbers(seq: Sequence) -> np.ndarray:
    """1 for a learner's first attempt on a skill, 2 for the second, ..."""
    seen: dict[int, int] = {}
    out = np.empty(len(seq), dtype=np.int64)
    for i, s in enumerate(seq.skills.tolist()):
        seen[s] = seen.get(s, 0) + 1
        out[i] = seen[s]
    return out


def compare(seqs: list[Sequence], simulated: list[np.ndarray], max_attempt: int = 10,
            min_attempts: int = 30) -> CohortComparison:
    from scipy.stats import pearsonr

    skills = np.concatenate([s.skills for s in seqs])
    real = np.concatenate([s.correct for s in seqs]).astype(float)
    sim = np.concatenate(simulated).astype(float)
    attempt = np.concatenate([attempt_numbers(s) for s in seqs])
    rates: dict[int, tuple[float, float, int]] = {}
    for k in np.unique(skills):
        m = skills == k
        rates[int(k)] = (float(real[m].mean()), float(sim[m].mean()), int(m.sum()))
    kept = [v for v in rates.values() if v[2] >= min_attempts]
    r = float(pearsonr([v[0] for v in kept], [v[1] for v in kept])[0]) if len(kept) > 2 else float("nan")
    curve_real, curve_sim = [], []
    for a in range(1, max_attempt + 1):
        m = attempt == a
        curve_real.append(float(real[m].mean()) if m.any() else float("nan"))
        curve_sim.append(float(sim[m].mean()) if m.any() else float("nan"))
    return CohortComparison(len(seqs), len(real), float(real.mean()), float(sim.mean()), r, len(kept),
                            curve_real, curve_sim, rates)


def plot(cmp: CohortComparison, path: str | Path, cohorts: int = 1) -> Path:
    """Per-skill rates (simulated against real) and learning curves, as one PNG written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from raykd.io import atomic_path

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.5))
    kept = [v for v in cmp.skill_rates.values() if v[2] >= 30]
    a.scatter([v[0] for v in kept], [v[1] for v in kept], s=[max(8, v[2] / 40) for v in kept], alpha=0.6)
    a.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
    a.set(xlabel="real correct rate", ylabel=f"simulated correct rate (mean of {cohorts} cohorts)",
          title=f"per skill (r = {cmp.skill_rate_pearson_r:.3f}, {len(kept)} skills)")
    x = list(range(1, len(cmp.learning_curve_real) + 1))
    b.plot(x, cmp.learning_curve_real, marker="o", label="real")
    b.plot(x, cmp.learning_curve_simulated, marker="s", label="simulated")
    b.set(xlabel="attempt number on a skill", ylabel="correct rate", title="learning curves")
    b.legend()
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def table(cmp: CohortComparison, singles: list[tuple[float, float]] | None = None) -> str:
    """Markdown: the headline figures (simulated: the mean of the cohorts, and the range of single cohorts),
    then the learning curves."""
    lines = ["| | real | simulated |", "|---|---|---|",
             f"| correct rate ({cmp.interactions:,} attempts, {cmp.learners:,} learners) | "
             f"{cmp.real_correct_rate:.3f} | {cmp.simulated_correct_rate:.3f} |",
             f"| per-skill correct rates, Pearson r ({cmp.skills_compared} skills) | | "
             f"{cmp.skill_rate_pearson_r:.3f} |"]
    if singles and len(singles) > 1:
        rates, rs = [x for x, _ in singles], [y for _, y in singles]
        lines += [f"| single cohorts ({len(singles)}): correct rate | | {min(rates):.3f} to {max(rates):.3f} |",
                  f"| single cohorts ({len(singles)}): per-skill Pearson r | | {min(rs):.3f} to {max(rs):.3f} |"]
    for k, (r, s) in enumerate(zip(cmp.learning_curve_real, cmp.learning_curve_simulated, strict=True), start=1):
        lines.append(f"| correct rate at attempt {k} on a skill | {r:.3f} | {s:.3f} |")
    return "\n".join(lines) + "\n"
