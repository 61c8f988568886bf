"""Small datasets written by the tests themselves (never copies of ../shared/data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CRITERIA = ["E1", "E2", "E3"]
PHRASES = {
    "E1": ["gas particles spread out", "the molecules move apart"],
    "E2": ["heat makes them move faster", "higher temperature speeds particles"],
    "E3": ["the pressure pushes the walls", "particles hit the balloon wall"],
}


def write_pasta_task(root: Path, n_train: int = 60, n_test: int = 20, seed: int = 0) -> Path:
    """A PASTA-style multi-label task whose labels are recoverable from the text."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        lines = ["id,response," + ",".join(CRITERIA)]
        for i in range(n):
            flags = rng.integers(0, 2, size=len(CRITERIA))
            parts = [PHRASES[c][rng.integers(0, 2)] for c, f in zip(CRITERIA, flags, strict=True) if f]
            text = " and ".join(parts) if parts else "I do not know"
            lines.append(f"{split}-{i},{text}," + ",".join(str(int(f)) for f in flags))
        (root / f"task1_{split}.csv").write_text("\n".join(lines) + "\n")
    return root


def tiny_teacher_config(out: Path, **sections):
    """A teacher config small enough for tests: tiny gpt-oss + LoRA, ZeRO-3, 2 workers, ASAP-SAS set 1 slice."""
    from raykd.config import from_dict
    from raykd.teacher.config import TeacherJobConfig

    base = {
        "name": "tiny", "output_dir": str(out / "teacher"),
        "data": {"path": "asap_sas", "options": {"sets": [1]}, "include_unlabelled": True, "limit_per_task": 16},
        "model": {"kind": "llm", "tiny": "gpt_oss", "max_length": 32},
        "lora": {"r": 4, "alpha": 8},
        "train": {"epochs": 2, "batch_size": 4, "lr": 1e-3, "log_every": 2},
        "deepspeed": {"zero_stage": 3},
        "scaling": {"num_workers": 2, "cpus_per_worker": 0.5, "max_failures": 2},
        "export": {"batch_size": 16},
    }
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    cfg = from_dict(TeacherJobConfig, base)
    return cfg


def tiny_stack_config(out: Path, **sections):
    """A stacked teacher on tiny_teacher_config's data: MiniLM states, all learner groups, 3 folds, its own
    representation cache under `out`."""
    from raykd.config import from_dict
    from raykd.teacher.config import TeacherJobConfig

    base = {
        "name": "tiny-stack", "output_dir": str(out / "teacher"),
        "data": {"path": "asap_sas", "options": {"sets": [1]}, "include_unlabelled": True, "limit_per_task": 16},
        "model": {"kind": "stack"},
        "stack": {"representations": [{"backbone": "minilm", "max_length": 64}], "folds": 3,
                  "cache_dir": str(out / "representations")},
    }
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return from_dict(TeacherJobConfig, base)
