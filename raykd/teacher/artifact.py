"""The saved teacher: a folder that scores responses without the training code's state.

    raykd_model.json        type, backbone config, LoRA config, tasks, thresholds, parameter counts
    trainable.safetensors   the trained parameters only (LoRA adapters + head for LLM teachers)
    base.safetensors        the frozen base, only for tiny random backbones (real ones reload from their path)
    tokenizer/
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from raykd.config import from_dict
from raykd.heads import TaskLayout, probabilities
from raykd.inputs import model_inputs
from raykd.io import atomic_dir
from raykd.teacher.config import LoraConfig, ModelConfig
from raykd.teacher.model import autocast, build_model, build_tokenizer, tokenize
from raykd.training import count_parameters

MANIFEST = "raykd_model.json"


def save_teacher(out_dir: str | Path, *, model_cfg: ModelConfig, lora_cfg: LoraConfig, layout: TaskLayout,
                 thresholds: dict[str, list[float]], trainable: dict[str, torch.Tensor],
                 base: dict[str, torch.Tensor] | None, tokenizer: Any, parameters: dict[str, int],
                 seed: int, extra: dict[str, Any] | None = None) -> Path:
    """Write the artifact into a temporary folder beside `out_dir`, then move it into place (atomic_dir)."""
    with atomic_dir(out_dir) as tmp:
        save_file({k: v.contiguous().float() for k, v in trainable.items()}, tmp / "trainable.safetensors")
        if base is not None:
            save_file({k: v.contiguous() for k, v in base.items()}, tmp / "base.safetensors")
        tokenizer.save_pretrained(tmp / "tokenizer")
        manifest = {
            "type": "teacher",
            "model": dataclasses.asdict(model_cfg),
            "lora": dataclasses.asdict(lora_cfg),
            "tasks": layout.to_list(),
            "thresholds": thresholds,
            "parameters": parameters,
            "seed": seed,
            **(extra or {}),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return Path(out_dir)


class TeacherScorer:
    """Loads a saved teacher and returns per-task probabilities for batches of responses."""

    kind = "teacher"

    @staticmethod
    def read_manifest(path: str | Path) -> dict[str, Any]:
        return json.loads((Path(path) / MANIFEST).read_text())

    @staticmethod
    def read_thresholds(path: str | Path) -> dict[str, list[float]]:
        """The multi-label thresholds tuned on validation, without loading the model."""
        return TeacherScorer.read_manifest(path).get("thresholds", {})

    def __init__(self, path: str | Path, device: str | None = None):
        self.path = Path(path)
        self.manifest = json.loads((self.path / MANIFEST).read_text())
        self.model_cfg = from_dict(ModelConfig, self.manifest["model"], "model")
        self.model_cfg.tokenizer = str(self.path / "tokenizer")
        lora_cfg = from_dict(LoraConfig, self.manifest["lora"], "lora")
        self.layout = TaskLayout.from_list(self.manifest["tasks"])
        self.thresholds: dict[str, list[float]] = self.manifest.get("thresholds", {})
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.tokenizer = build_tokenizer(self.model_cfg)
        self.model = build_model(self.model_cfg, lora_cfg, self.layout.total, self.tokenizer,
                                 on_gpu=self.device.type == "cuda", seed=self.manifest.get("seed", 0))
        if (self.path / "base.safetensors").exists():
            _load_named(self.model, load_file(self.path / "base.safetensors"), "base")
        _load_named(self.model, load_file(self.path / "trainable.safetensors"), "trainable")
        self.model.to(self.device).eval()

    @property
    def num_parameters(self) -> int:
        return count_parameters(self.model)[0]

    @torch.no_grad()
    def predict_proba(self, texts: list[str], tasks: list[str], questions: list[str | None] | None = None,
                      references: list[str | None] | None = None, batch_size: int = 32) -> list[np.ndarray]:
        """One probability vector per response, over its task's classes/labels."""
        inputs = model_inputs(texts, questions, references, self.model_cfg.include_question)
        # Chunks of similar length pad little: far less work than chunks in file order.
        order = np.argsort([len(x) for x in inputs], kind="stable")
        out: list[np.ndarray] = [None] * len(inputs)  # type: ignore[list-item]
        for start in range(0, len(inputs), batch_size):
            rows = order[start:start + batch_size]
            enc = tokenize(self.tokenizer, self.model_cfg, [texts[i] for i in rows],
                           [questions[i] for i in rows] if questions is not None else None,
                           [references[i] for i in rows] if references is not None else None)
            with autocast(self.model_cfg, self.device):
                logits = self.model(**{k: v.to(self.device) for k, v in enc.items()}).logits.float().cpu().numpy()
            for j, i in enumerate(rows):
                out[i] = probabilities(logits[j, self.layout.span(tasks[i])], self.layout.spec(tasks[i]))
        return out


def _load_named(model: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    missing = [k for k in state if k not in params and k not in buffers]
    if missing:
        raise ValueError(f"{what} weights do not fit the model: unknown names {missing[:3]}")
    with torch.no_grad():
        for k, v in state.items():
            target = params.get(k, buffers.get(k))
            target.copy_(v.to(target.dtype))
