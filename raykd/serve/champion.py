"""The model a replica serves: fetched once per version into its own cache folder, swapped when the registry's
alias moves, and a version that fails to load retried with back-off instead of every poll.

    models:/NAME@ALIAS ──poll──> version v ──fetch──> <cache>/<NAME>/<v>/ ──load──> Served (swapped as one object)
                                                          │ failed: folder removed, v retried after 1, 2, 4 ... polls
                                                          └ replaced: the previous version's folder removed

A local model folder is served in place and never polled. Nothing here holds a response text.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raykd.serve.schemas import ModelInfo, Staleness

logger = logging.getLogger("raykd.serve")


@dataclass(frozen=True)
class Served:
    """The model a replica serves now. Swapped as one object: a request sees the old model or the new one.
    `download` is the cache folder it was fetched into (None for a local folder, served in place)."""

    scorer: Any
    info: ModelInfo
    info_json: dict[str, Any]
    alias: str | None
    download: Path | None


@dataclass(frozen=True)
class Failure:
    version: str
    failures: int
    reason: str
    retry_at: float


class ModelStore:
    """Artifacts downloaded under `root`, one folder per registered version (or artifact URI), written atomically."""

    def __init__(self, root: Path, tracking_uri: str | None):
        self.root, self.tracking_uri = root, tracking_uri

    def folder(self, uri: str) -> Path:
        from raykd.registry import parse_model_ref

        if uri.startswith("models:/"):
            name, _, version = parse_model_ref(uri)
            return self.root / re.sub(r"[^A-Za-z0-9._-]", "_", name) / str(version)
        return self.root / f"artifact-{hashlib.sha256(uri.encode()).hexdigest()[:16]}"

    def fetch(self, uri: str) -> tuple[Path, Path]:
        """(model folder, download folder) of a pinned artifact URI, downloaded unless it is already here."""
        import mlflow

        from raykd.scoring import find_model_folder

        target = self.folder(uri)
        if not target.is_dir():
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
            try:
                if self.tracking_uri:  # MLflow resolves models:/ URIs through the process-wide registry
                    mlflow.set_tracking_uri(self.tracking_uri)
                mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(partial))
                partial.rename(target)
            finally:
                shutil.rmtree(partial, ignore_errors=True)
        return find_model_folder(target, uri), target


def forget(download: Path | None) -> None:
    if download is not None:
        shutil.rmtree(download, ignore_errors=True)


class ModelSource:
    """What a replica serves and where it comes from: `uri` is a model folder, `runs:/...` or `models:/NAME@ALIAS`.

    `load(path)` turns a model folder into a scorer. `check(now)` follows the alias; a version that fails to load
    is remembered and tried again after `poll_interval_s` doubled per failure, capped at `max_backoff_s`. The
    download of a model no longer served is removed, so the cache holds at most one copy of each version."""

    def __init__(self, uri: str, tracking_uri: str | None, cache_dir: Path, poll_interval_s: float,
                 max_backoff_s: float, load: Callable[[str], Any]):
        self.uri, self.tracking_uri, self.load = uri, tracking_uri, load
        self.store = ModelStore(cache_dir, tracking_uri)
        self.poll_interval_s, self.max_backoff_s = poll_interval_s, max_backoff_s
        self.failure: Failure | None = None
        self.served = self._open(uri)

    def _client(self) -> Any:
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri)

    def _open(self, uri: str) -> Served:
        from raykd.registry import parse_model_ref
        from raykd.scoring import MANIFEST, resolve_model

        if uri.startswith("models:/"):
            name, alias, version = parse_model_ref(uri)
            client = self._client()
            mv = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, version)
            return self._fetched(name, str(mv.version), uri, alias)
        if ":/" in uri:  # runs:/ID/model and other artifact URIs: fetched once, never polled
            path, download = self.store.fetch(uri)
        else:
            path, download = resolve_model(uri), None
        digest = hashlib.sha256(Path(path, MANIFEST).read_bytes()).hexdigest()[:12]
        return self._served(path, download, os.path.basename(os.path.normpath(uri)) or uri, digest, uri, None)

    def _fetched(self, name: str, version: str, uri: str, alias: str | None) -> Served:
        """Version `version` of `name`, fetched and loaded; a failed load leaves no download behind."""
        path, download = self.store.fetch(f"models:/{name}/{version}")
        try:
            return self._served(path, download, name, version, uri, alias)
        except BaseException:
            forget(download)
            raise

    def _served(self, path: Path, download: Path | None, name: str, version: str, uri: str,
                alias: str | None) -> Served:
        scorer = self.load(str(path))
        info = ModelInfo(name=name, version=version, kind=scorer.kind, uri=uri)
        logger.info("serving %s version %s (%s)", name, version, scorer.kind)
        return Served(scorer, info, info.model_dump(), alias, download)

    def switch(self, uri: str) -> None:
        """Serve another model (a `reconfigure`); the old one's download goes."""
        old = self.served
        self.served, self.uri, self.failure = self._open(uri), uri, None
        if old.download != self.served.download:
            forget(old.download)

    def check(self, now: float) -> bool:
        """Follow the alias once: True when a new version is now served."""
        current = self.served
        if current.alias is None:
            return False
        latest = str(self._client().get_model_version_by_alias(current.info.name, current.alias).version)
        if latest == current.info.version:
            self.failure = None  # the alias went back to what is served
            return False
        if self.failure and self.failure.version == latest and now < self.failure.retry_at:
            return False
        try:
            served = self._fetched(current.info.name, latest, current.info.uri, current.alias)
        except Exception as e:  # any broken artifact: keep serving what works
            failures = self.failure.failures + 1 if self.failure and self.failure.version == latest else 1
            wait = min(self.max_backoff_s, self.poll_interval_s * 2 ** (failures - 1))
            self.failure = Failure(latest, failures, f"{e.__class__.__name__}: {str(e)[:300]}", now + wait)
            logger.warning("champion %s version %s failed to load (%d time(s)); next try in %.0fs: %s",
                           current.info.name, latest, failures, wait, e.__class__.__name__)
            return False
        logger.info("new champion: %s version %s -> %s", current.info.name, current.info.version, latest)
        self.served, self.failure = served, None
        forget(current.download)
        return True

    def staleness(self, now: float) -> Staleness | None:
        f = self.failure
        if f is None:
            return None
        return Staleness(wanted_version=f.version, failures=f.failures, reason=f.reason,
                         next_attempt_in_s=max(0.0, round(f.retry_at - now, 1)))

    def close(self) -> None:
        shutil.rmtree(self.store.root, ignore_errors=True)
