"""Run storage: where a stage keeps its outputs, a plain folder or an object store (issue 31).

A stage's `output_dir` (and a student stage's `teacher`) is a *location*: a path (`runs/teacher`,
`file:///srv/runs/teacher`) or a URI of an object store (`s3://bucket/prefix/teacher`), read and written through
pyarrow's filesystems, as Ray Train and Tune read theirs. On a cluster the Ray pods share no disk with the driver,
so everything a later stage or a worker on another node needs goes through the location:

    stage_folder(location)   the folder a stage writes into: the location itself when local; otherwise a scratch
                             folder on the driver, uploaded to the location when the stage succeeds (results
                             last, so a reader never finds a result whose files are missing)
    localize(location)       a finished folder as a local path: itself when local; otherwise downloaded into this
                             node's cache, only the files that changed since the last time (a Ray worker on any
                             node calls it for the teacher's model)
    ray_storage(location)    `storage_path` and `storage_filesystem` for Ray Train's and Tune's RunConfig, so their
                             checkpoints (every rank's DeepSpeed shard) land in the object store, once a Ray worker
                             has shown it can write there (`ray_location`: the same without that check, to ask)

Credentials and the endpoint of an S3-compatible store (MinIO, moto) come only from the environment, as the AWS
SDKs read them: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL_S3. A location
with credentials in it is refused, so none can reach a config file, an MLflow param or a log.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from raykd.errors import ConfigError

# Object stores raykd runs on (what pyarrow reads natively); `file://` and plain paths are local folders.
REMOTE_SCHEMES = ("s3", "gs")
# Ray Train's and Tune's own folders in a stage's location: their checkpoints (a large teacher's are many GB) are
# read by Ray alone, never fetched with the folder.
RAY_FOLDERS = ("ray_results", "ray_tune")
# Files a stage writes last: a stage's typed result marks it finished (TeacherOutput.load looks for it).
RESULTS_LAST = ("_result.json",)
FETCHED = ".raykd-fetched.json"  # in a localized folder: the remote files it holds, by size and mtime
# An object store's modification time has one-second steps, so a small file rewritten with the same size (a
# result, a state file) can look unchanged: files up to this size are fetched every time (they cost nothing).
ALWAYS_FETCH = 1 << 16
CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL_S3")
GCS_CREDENTIAL_ENV = ("GOOGLE_APPLICATION_CREDENTIALS",)  # or the node's service account (Google's default chain)


def is_remote(location: str | os.PathLike) -> bool:
    return urlsplit(str(location)).scheme in REMOTE_SCHEMES


def location_problem(location: str) -> str | None:
    """What is wrong with `location` as run storage, or None when raykd can store runs there."""
    parts = urlsplit(location)
    if parts.scheme in ("", "file") or len(parts.scheme) == 1:  # a path (a Windows drive letter too)
        return None
    if parts.scheme not in REMOTE_SCHEMES:
        return (f"{location!r}: unsupported storage scheme {parts.scheme!r} "
                f"(use a path, file://, or one of {', '.join(s + '://' for s in REMOTE_SCHEMES)})")
    if parts.username or parts.password or parts.query:
        return ("credentials and options do not belong in a storage URI: give them in the environment "
                f"({', '.join(CREDENTIAL_ENV)})")
    if not parts.netloc:
        return f"{location!r}: no bucket (expected {parts.scheme}://bucket/prefix)"
    return None


def normalise(location: str | os.PathLike) -> str:
    """A remote URI as it is; a path (or file://) made absolute."""
    text = str(location)
    if is_remote(text):
        return text.rstrip("/")
    if text.startswith("file://"):
        text = urlsplit(text).path
    return str(Path(text).expanduser().resolve())


def join(location: str | os.PathLike, *parts: str) -> str:
    base = normalise(location)
    return "/".join([base, *parts]) if is_remote(base) else str(Path(base, *parts))


def filesystem(location: str | os.PathLike) -> tuple[Any, str]:
    """(pyarrow FileSystem, path within it) for `location`."""
    import pyarrow.fs as pafs

    location = normalise(location)
    if not is_remote(location):
        return pafs.LocalFileSystem(), location
    fs, path = pafs.FileSystem.from_uri(location)
    return fs, path


def ray_location(location: str | os.PathLike) -> dict[str, Any]:
    """The storage path and, for an object store, its filesystem, as Ray's Train and Tune APIs take them."""
    location = normalise(location)
    if not is_remote(location):
        return {"storage_path": location}
    fs, path = filesystem(location)
    return {"storage_path": path, "storage_filesystem": fs}


def ray_storage(location: str | os.PathLike) -> dict[str, Any]:
    """Keyword arguments for a Ray run that will write at `location` (`RunConfig`, `Tuner.restore`): `ray_location`,
    once a Ray worker has written there when it is an object store (`check_workers_can_write`)."""
    where = ray_location(location)
    if "storage_filesystem" in where:
        check_workers_can_write(where["storage_filesystem"], where["storage_path"], normalise(location))
    return where


def write_problem(fs: Any, path: str) -> str | None:
    """Why `path` cannot be made a folder (as Ray makes its storage path) and hold a marker file through `fs`;
    None when it can."""
    import uuid

    marker = f"{path.rstrip('/')}/.raykd-write-check-{uuid.uuid4().hex}"
    try:
        fs.create_dir(path)
        with fs.open_output_stream(marker) as f:
            f.write(b"ok")
        fs.delete_file(marker)
    except Exception as e:  # whatever the store answers is what the user must read
        return f"{type(e).__name__}: {e}"
    return None


def check_workers_can_write(fs: Any, path: str, location: str, timeout_s: float = 120.0) -> None:
    """Ray Train's and Tune's workers write their checkpoints through `fs` from their own processes, which find the
    store's credentials and endpoint in *their* environment, not the driver's. One Ray task writes a marker
    first, so a cluster whose nodes lack them fails here, naming the variables, instead of after every worker's
    retries. Nothing to check before this driver starts Ray: the local Ray it starts inherits its environment."""
    import ray

    if not ray.is_initialized():
        return
    probe = ray.remote(num_cpus=0)(write_problem)
    try:
        problem = ray.get(probe.remote(fs, path), timeout=timeout_s)
    except ray.exceptions.GetTimeoutError:
        problem = f"no Ray worker answered within {timeout_s:g} s"
    if problem:
        names = GCS_CREDENTIAL_ENV if location.startswith("gs://") else CREDENTIAL_ENV
        raise ConfigError(location, f"a Ray worker cannot write here ({problem}); every Ray node needs the "
                                    f"store's credentials and endpoint in its environment ({', '.join(names)}), "
                                    f"not only the driver")


def exists(location: str | os.PathLike) -> bool:
    import pyarrow.fs as pafs

    fs, path = filesystem(location)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def read_text(location: str | os.PathLike) -> str:
    fs, path = filesystem(location)
    with fs.open_input_stream(path) as f:
        return f.read().decode("utf-8")


def write_text(location: str | os.PathLike, text: str) -> None:
    """Write a small text file; an object store's PUT is atomic, a local file is renamed into place."""
    if not is_remote(location):
        from raykd.io import write_text_atomic

        write_text_atomic(normalise(location), text)
        return
    fs, path = filesystem(location)
    with fs.open_output_stream(path) as f:
        f.write(text.encode("utf-8"))


def delete(location: str | os.PathLike) -> None:
    """Remove a file or folder; nothing to do when it is not there."""
    import pyarrow.fs as pafs

    fs, path = filesystem(location)
    kind = fs.get_file_info(path).type
    if kind == pafs.FileType.Directory:
        fs.delete_dir(path)
    elif kind == pafs.FileType.File:
        fs.delete_file(path)


def _listing(location: str) -> dict[str, tuple[int, int]]:
    """Every file under a remote folder: relative path -> (size, mtime in ns)."""
    import pyarrow.fs as pafs

    fs, path = filesystem(location)
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
    return {info.path[len(path):].lstrip("/"): (info.size, info.mtime_ns or 0)
            for info in infos if info.type == pafs.FileType.File}


def upload(folder: str | os.PathLike, location: str) -> None:
    """Copy a local folder's files to `location`. A reader takes a stage's result as the sign that its files are
    complete, so the result an earlier run left there goes first and the new one comes after every other file;
    a file whose upload fails is removed rather than left half-written."""
    fs, base = filesystem(location)
    files = sorted((p for p in Path(folder).rglob("*") if p.is_file()),
                   key=lambda p: (p.name.endswith(RESULTS_LAST), str(p)))
    for rel in _listing(location):
        if rel.endswith(RESULTS_LAST):
            fs.delete_file(f"{base}/{rel}")
    for file in files:
        target = f"{base}/{file.relative_to(folder).as_posix()}"
        try:
            with open(file, "rb") as src, fs.open_output_stream(target) as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except BaseException:
            with contextlib.suppress(OSError):  # pyarrow closes (and so writes) the object on an error
                fs.delete_file(target)
            raise


def cache_root() -> Path:
    """This node's cache of localized folders and stage scratch: RAYKD_STORAGE_CACHE, or ~/.cache/raykd/storage."""
    return Path(os.environ.get("RAYKD_STORAGE_CACHE") or Path.home() / ".cache" / "raykd" / "storage")


def _cache_dir(kind: str, location: str) -> Path:
    return cache_root() / kind / hashlib.sha256(location.encode()).hexdigest()[:24]


def localize(location: str | os.PathLike) -> Path:
    """A folder at `location` as a local path (see the module docstring), without Ray's own folders (RAY_FOLDERS);
    a lock keeps the processes of one node (Tune trials, Ray Data actors) from fetching the same folder at once."""
    from filelock import FileLock

    location = normalise(location)
    if not is_remote(location):
        return Path(location)
    target = _cache_dir("fetched", location)
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        remote = {rel: stamp for rel, stamp in _listing(location).items() if rel.split("/", 1)[0] not in RAY_FOLDERS}
        if not remote:
            raise FileNotFoundError(f"{location}: no such folder in the object store (or it is empty)")
        kept = json.loads((target / FETCHED).read_text()) if (target / FETCHED).is_file() else {}
        fs, base = filesystem(location)
        for rel, stamp in remote.items():
            local = target / rel
            if stamp[0] > ALWAYS_FETCH and kept.get(rel) == list(stamp) and local.is_file():
                continue
            local.parent.mkdir(parents=True, exist_ok=True)
            tmp = local.with_name(f".{local.name}.part")
            with fs.open_input_stream(f"{base}/{rel}") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            os.replace(tmp, local)
        for rel in set(kept) - set(remote):  # gone from the store: gone here too
            (target / rel).unlink(missing_ok=True)
        (target / FETCHED).write_text(json.dumps({rel: list(s) for rel, s in remote.items()}))
    return target


def checkpoint_folder(checkpoint: Any) -> Path:
    """A Ray checkpoint as a local folder: its own folder on a local filesystem (no copy), else downloaded into
    a temporary folder."""
    import pyarrow.fs as pafs

    if isinstance(checkpoint.filesystem, pafs.LocalFileSystem):
        return Path(checkpoint.path)
    return Path(checkpoint.to_directory())


def stage_folder(location: str | os.PathLike) -> Path:
    """The local folder a stage writes into (see the module docstring): the location itself, or a fresh scratch
    folder for an object store, which `publish` uploads and `discard` removes."""
    location = normalise(location)
    if not is_remote(location):
        Path(location).mkdir(parents=True, exist_ok=True)
        return Path(location)
    scratch = _cache_dir("stages", location)
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    return scratch


def publish(folder: Path, location: str | os.PathLike) -> None:
    """A finished stage's folder to its location (nothing to do for a local one)."""
    if is_remote(location):
        upload(folder, normalise(location))


def discard(folder: Path, location: str | os.PathLike) -> None:
    """Remove a stage's scratch folder (never a local location)."""
    if is_remote(location):
        shutil.rmtree(folder, ignore_errors=True)
