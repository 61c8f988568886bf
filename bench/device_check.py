"""A device check for a lent GPU: the teacher recipe's model code alone on one accelerator (issue 31, item 5).

The device machine has PyTorch, transformers, peft, safetensors and scikit-learn, but no Ray, DeepSpeed, MLflow,
pydantic or network, and at most 64 MiB travels with the tree. So this script imports nothing of raykd but
raykd.teacher.shapes (the configs, mean-pooling classifier and LoRA wrapper the teacher recipe builds from), and
what it needs beyond the tree is packed here first:

    # here: MiniLM's weights converted to fp16 (about 44 MiB) and ASAP-SAS set 1's train and validation
    # responses (the project's split; the test split stays home) into an ignored folder
    .venv/bin/python -m bench.device_check pack --pack runs/device_pack
    # on the device machine (the `run` tool with carry ["runs/device_pack"]), well under 8 minutes on one H200
    python -m bench.device_check run --pack runs/device_pack --out $OUT
    # in the suite (tests/bench/test_device_check.py): the same code on CPU at a tiny size
    python -m bench.device_check run --pack P --out O --tiny

`run` measures, each part on its own so that one failing still reports the other:
1. gpt-oss-20b's shape (24 layers, 2880 wide, 32 experts top-4, 64 query / 8 KV heads, 201,088 vocabulary;
   bench/config.gpu.yaml's llm_throughput) with random bf16 weights and LoRA r=64 on q/k/v/o: training
   samples/s and peak GPU memory at batch 8 x 128 tokens (speed and memory of the 20B path, no quality);
2. MiniLM (all-MiniLM-L6-v2, mean pooling, as `model: {kind: encoder, name_or_path: minilm}` builds it)
   fine-tuned for a few hundred steps on ASAP-SAS set 1 in bf16 autocast: samples/s, peak memory and the
   validation QWK after each epoch.
It writes `device_check.json` and `device_check.md` to --out and prints the markdown.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

MINILM_FILES = ("config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
# gpt-oss-20b as bench/config.gpu.yaml's llm_throughput writes it (raykd.teacher.shapes.tiny_config fields)
GPT_OSS_20B = dict(layers=24, hidden=2880, vocab=201088, overrides=dict(
    intermediate_size=2880, num_attention_heads=64, num_key_value_heads=8, head_dim=64, num_local_experts=32,
    num_experts_per_tok=4, sliding_window=128, max_position_embeddings=131072))
GPT_OSS_TINY = dict(layers=2, hidden=64, vocab=1000, overrides={})


@dataclass
class Sizes:
    """How much each part runs: the device's figures, or the suite's tiny CPU run."""
    llm: dict[str, Any]
    llm_batch: int
    llm_length: int
    llm_lora_r: int
    llm_warmup: int
    llm_steps: int
    minilm_batch: int
    minilm_length: int
    minilm_epochs: int
    minilm_train: int | None  # responses used (None: all)
    minilm_validation: int | None


FULL = Sizes(GPT_OSS_20B, 8, 128, 64, 3, 20, 16, 128, 4, None, None)
TINY = Sizes(GPT_OSS_TINY, 2, 16, 4, 1, 2, 8, 32, 1, 32, 16)


@dataclass
class Part:
    name: str
    ok: bool = False
    seconds: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


# --- pack (here, with raykd's data and zoo) ------------------------------------------------------------------

def pack(folder: Path) -> dict[str, Any]:
    """MiniLM in fp16 and ASAP-SAS set 1's train and validation split into `folder` (replaced whole)."""
    import torch
    from safetensors.torch import load_file, save_file

    from raykd.data.config import DataConfig
    from raykd.data.preparation import prepare_dataset
    from raykd.teacher.model import minilm_path

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "minilm").mkdir(parents=True)
    source = Path(minilm_path())
    for name in MINILM_FILES:
        shutil.copy2(source / name, tmp / "minilm" / name)
    # position_ids is an index buffer the model rebuilds, not a weight
    weights = {k: v.to(torch.float16).contiguous() for k, v in load_file(source / "model.safetensors").items()
               if v.is_floating_point()}
    save_file(weights, tmp / "minilm" / "model.fp16.safetensors")
    ds = prepare_dataset(DataConfig(options={"sets": [1]}))
    f = ds.frame[ds.frame["split"].isin(["train", "validation"]) & ds.frame["y"].notna()]
    (spec,) = ds.tasks.values()
    f[["text", "y", "split"]].assign(y=f["y"].astype(int)).to_csv(tmp / "asap1.csv", index=False)
    manifest = {"data": "ASAP-SAS set 1, train and validation of the project's split", "digest": ds.digest(),
                "labels": list(spec.labels), "rows": {s: int((f["split"] == s).sum()) for s in ("train", "validation")},
                "minilm": str(source)}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return {**manifest, "bytes": size}


# --- run (on the device: torch, transformers, peft, safetensors, scikit-learn only) ---------------------------

def _device() -> Any:
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _peak_memory(device: Any) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None


def _reset_memory(device: Any) -> None:
    import gc

    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def llm_lora(sizes: Sizes, device: Any) -> dict[str, Any]:
    """LoRA training steps of gpt-oss's shape with random bf16 weights and random tokens."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from raykd.teacher.shapes import apply_lora, tiny_config

    shape = sizes.llm
    conf = tiny_config("gpt_oss", shape["vocab"], 0, 4, shape["layers"], shape["hidden"], shape["overrides"])
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with torch.device(device):  # built where it trains: 21B parameters never pass through host memory
        model = AutoModelForSequenceClassification.from_config(conf, dtype=torch.bfloat16)
    model.config.pad_token_id = 0
    lora = SimpleNamespace(r=sizes.llm_lora_r, alpha=2 * sizes.llm_lora_r, dropout=0.05,
                           target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], include_experts=False)
    model = apply_lora(model, lora).to(device)
    build_s = time.perf_counter() - t0
    total = sum(p.numel() for p in model.parameters())
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    model.train()
    gen = torch.Generator(device="cpu").manual_seed(0)

    def step() -> float:
        ids = torch.randint(1, shape["vocab"], (sizes.llm_batch, sizes.llm_length), generator=gen).to(device)
        labels = torch.randint(0, 4, (sizes.llm_batch,), generator=gen).to(device)
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return out.loss.item()

    for _ in range(sizes.llm_warmup):
        step()
    _sync(device)
    t0 = time.perf_counter()
    losses = [step() for _ in range(sizes.llm_steps)]
    _sync(device)
    seconds = time.perf_counter() - t0
    figures = {"parameters": total, "trainable": sum(p.numel() for p in trainable), "build_s": round(build_s, 1),
               "batch": sizes.llm_batch, "tokens": sizes.llm_length, "steps": sizes.llm_steps,
               "samples_per_s": sizes.llm_steps * sizes.llm_batch / seconds,
               "tokens_per_s": sizes.llm_steps * sizes.llm_batch * sizes.llm_length / seconds,
               "peak_memory_gib": _peak_memory(device), "loss_finite": bool(np.isfinite(losses).all())}
    return figures  # the model goes with this frame; run() collects it before the next part


def _read_split(folder: Path, sizes: Sizes) -> tuple[dict[str, tuple[list[str], np.ndarray]], int]:
    import csv

    with open(folder / "asap1.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    labels = len(json.loads((folder / "manifest.json").read_text())["labels"])
    out = {}
    for split, limit in (("train", sizes.minilm_train), ("validation", sizes.minilm_validation)):
        picked = [r for r in rows if r["split"] == split][:limit]
        out[split] = ([r["text"] for r in picked], np.array([int(r["y"]) for r in picked]))
    return out, labels


def minilm_finetune(folder: Path, sizes: Sizes, device: Any) -> dict[str, Any]:
    """MiniLM mean-pooled, fine-tuned on set 1's train split; QWK on its validation split after each epoch."""
    import torch
    from safetensors.torch import load_file
    from sklearn.metrics import cohen_kappa_score
    from transformers import AutoConfig, AutoModel, AutoTokenizer, get_linear_schedule_with_warmup

    from raykd.teacher.shapes import MeanPoolClassifier

    data, num_labels = _read_split(folder, sizes)
    path = folder / "minilm"
    tokenizer = AutoTokenizer.from_pretrained(path)
    encoder = AutoModel.from_config(AutoConfig.from_pretrained(path))
    state = {k: v.float() for k, v in load_file(path / "model.fp16.safetensors").items()}
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]  # a buffer, rebuilt from the config
    if missing or unexpected:
        raise RuntimeError(f"MiniLM weights do not match its config: missing {missing[:3]}, unexpected "
                           f"{unexpected[:3]}")
    torch.manual_seed(0)
    model = MeanPoolClassifier(encoder, num_labels).to(device)
    head = list(model.classifier.parameters())
    body = [p for n, p in model.named_parameters() if not n.startswith("classifier.")]
    optimizer = torch.optim.AdamW([{"params": body, "lr": 1e-4}, {"params": head, "lr": 1e-3}], weight_decay=0.01)
    texts, y = data["train"]
    per_epoch = -(-len(texts) // sizes.minilm_batch)
    schedule = get_linear_schedule_with_warmup(optimizer, int(0.1 * per_epoch * sizes.minilm_epochs),
                                               per_epoch * sizes.minilm_epochs)
    # bf16 autocast on the GPU as the teacher recipe trains there; CPUs without bf16 units would crawl
    autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")  # noqa: E731

    def batches(txt: list[str], order: np.ndarray) -> Any:
        for i in range(0, len(order), sizes.minilm_batch):
            idx = order[i:i + sizes.minilm_batch]
            enc = tokenizer([txt[j] for j in idx], truncation=True, max_length=sizes.minilm_length,
                            padding=True, return_tensors="pt")
            yield idx, {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}

    def validation_qwk() -> float:
        vt, vy = data["validation"]
        model.eval()
        preds = np.zeros(len(vt), dtype=int)
        with torch.no_grad(), autocast():
            for idx, enc in batches(vt, np.arange(len(vt))):
                preds[idx] = model(**enc).logits.float().argmax(-1).cpu().numpy()
        model.train()
        return float(cohen_kappa_score(vy, preds, weights="quadratic", labels=list(range(num_labels))))

    rng = np.random.default_rng(0)
    model.train()
    steps, train_s, qwk = 0, 0.0, []
    for _ in range(sizes.minilm_epochs):
        _sync(device)
        t0 = time.perf_counter()
        for idx, enc in batches(texts, rng.permutation(len(texts))):
            with autocast():
                logits = model(**enc).logits.float()
            loss = torch.nn.functional.cross_entropy(logits, torch.as_tensor(y[idx], device=device))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            steps += 1
        _sync(device)
        train_s += time.perf_counter() - t0
        qwk.append(validation_qwk())
    return {"train": len(texts), "validation": len(data["validation"][0]), "batch": sizes.minilm_batch,
            "max_length": sizes.minilm_length, "steps": steps, "samples_per_s": steps * sizes.minilm_batch / train_s,
            "peak_memory_gib": _peak_memory(device), "validation_qwk_by_epoch": [round(q, 4) for q in qwk]}


def run(folder: Path, out: Path, tiny: bool) -> list[Part]:
    """Both parts, each timed and caught on its own; the report written to `out`."""
    import torch
    import transformers

    device = _device()
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    sizes = TINY if tiny else FULL
    env = {"device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu",
           "torch": torch.__version__, "transformers": transformers.__version__, "tiny": tiny,
           "python": sys.version.split()[0]}
    parts = []
    shape = "gpt-oss, tiny shape" if tiny else "gpt-oss-20b shape"
    for name, fn in ((f"{shape}, LoRA r={sizes.llm_lora_r}, random bf16", lambda: llm_lora(sizes, device)),
                     ("MiniLM fine-tuned on ASAP-SAS set 1", lambda: minilm_finetune(folder, sizes, device))):
        part = Part(name)
        _reset_memory(device)
        t0 = time.perf_counter()
        try:
            part.figures = fn()
            part.ok = True
        except Exception as e:  # report and go on: the other part's figures are still worth the device time
            part.error = f"{type(e).__name__}: {e}"
            traceback.print_exc()
        part.seconds = round(time.perf_counter() - t0, 1)
        parts.append(part)
        print(f"[device-check] {name}: {'ok' if part.ok else part.error} ({part.seconds}s)", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "device_check.json").write_text(json.dumps({"env": env, "parts": [asdict(p) for p in parts]}, indent=2))
    (out / "device_check.md").write_text(markdown(env, parts))
    return parts


def markdown(env: dict[str, Any], parts: list[Part]) -> str:
    lines = [f"# Device check on {env['device']} (torch {env['torch']}, transformers {env['transformers']}"
             f"{', tiny' if env['tiny'] else ''})", ""]
    for p in parts:
        lines.append(f"## {p.name}: {'ok' if p.ok else 'FAILED'} in {p.seconds}s")
        lines += [f"- {k}: {v:.4g}" if isinstance(v, float) else f"- {k}: {v}" for k, v in p.figures.items()]
        if p.error:
            lines.append(f"- error: {p.error}")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="pack MiniLM (fp16) and ASAP-SAS set 1 for the device machine")
    p.add_argument("--pack", type=Path, default=Path("runs/device_pack"))
    r = sub.add_parser("run", help="run the check (on the device machine, or --tiny on CPU)")
    r.add_argument("--pack", type=Path, default=Path("runs/device_pack"))
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--tiny", action="store_true", help="tiny shapes and a few steps (CPU, the suite)")
    args = parser.parse_args(argv)
    if args.command == "pack":
        info = pack(args.pack)
        print(f"[device-check] packed {info['bytes'] / 2**20:.1f} MiB into {args.pack}: {info['rows']}")
        return 0
    if not (args.pack / "manifest.json").is_file():
        print(f"[device-check] {args.pack}/manifest.json: no pack here; run `python -m bench.device_check pack` "
              "first", file=sys.stderr)
        return 2
    parts = run(args.pack, args.out, args.tiny)
    print((args.out / "device_check.md").read_text())
    return 0 if all(p.ok for p in parts) else 1


if __name__ == "__main__":
    sys.exit(main())
