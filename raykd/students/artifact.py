"""The saved student: weights + vocabulary + tasks + thresholds, loadable with no training state.

    raykd_model.json      type, architecture and sizes, tasks (label names), thresholds, max_len
    weights.safetensors
    vocab.json            (+ tokenizer/ for the word-piece vocabulary)
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from raykd.heads import TaskLayout, probabilities
from raykd.io import atomic_dir
from raykd.students.lstm import LSTMSpec, LSTMStudent
from raykd.students.moe import MoESpec, MoEStudent
from raykd.students.vocab import Vocabulary, student_inputs

MANIFEST = "raykd_model.json"


def build_student(arch: str, spec: dict[str, Any]) -> torch.nn.Module:
    if arch == "lstm":
        return LSTMStudent(LSTMSpec(**spec))
    if arch == "moe":
        return MoEStudent(MoESpec(**spec))
    raise ValueError(f"unknown student architecture {arch!r}")


def save_student(out_dir: str | Path, model: torch.nn.Module, arch: str, vocab: Vocabulary, layout: TaskLayout,
                 thresholds: dict[str, list[float]], max_len: int, extra: dict[str, Any] | None = None,
                 include_question: bool = False) -> Path:
    with atomic_dir(out_dir) as tmp:
        save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, tmp / "weights.safetensors")
        vocab.save(tmp)
        manifest = {"type": "student", "arch": arch, "spec": dataclasses.asdict(model.spec),
                    "tasks": layout.to_list(), "thresholds": thresholds, "max_len": max_len,
                    "include_question": include_question,
                    "parameters": sum(p.numel() for p in model.parameters()), **(extra or {})}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return Path(out_dir)


class StudentScorer:
    """Loads a saved student and returns per-task probabilities."""

    kind = "student"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.manifest = json.loads((self.path / MANIFEST).read_text())
        self.layout = TaskLayout.from_list(self.manifest["tasks"])
        self.thresholds: dict[str, list[float]] = self.manifest.get("thresholds", {})
        self.vocab = Vocabulary.load(self.path)
        self.max_len = int(self.manifest["max_len"])
        self.include_question = bool(self.manifest.get("include_question", False))
        self.model = build_student(self.manifest["arch"], self.manifest["spec"])
        self.model.load_state_dict(load_file(self.path / "weights.safetensors"))
        self.model.eval()

    @property
    def num_parameters(self) -> int:
        return int(sum(p.numel() for p in self.model.parameters()))

    @torch.no_grad()
    def predict_proba(self, texts: list[str], tasks: list[str], questions: list[str | None] | None = None,
                      references: list[str | None] | None = None, batch_size: int = 256) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        task_index = {t: i for i, t in enumerate(self.layout.names)}
        inputs = student_inputs(texts, questions, self.include_question)
        for start in range(0, len(inputs), batch_size):
            chunk_tasks = tasks[start:start + batch_size]
            ids = self.vocab.encode(inputs[start:start + batch_size], self.max_len)
            task_ids = torch.tensor([task_index[t] for t in chunk_tasks])
            logits = self.model(ids, task_ids)["logits"]
            for i, task in enumerate(chunk_tasks):
                out.append(probabilities(logits[i, self.layout.span(task)], self.layout.spec(task)).numpy())
        return out
