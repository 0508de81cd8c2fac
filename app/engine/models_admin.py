"""Model management, the admin scope's work: pull a model into HF_HOME with its progress, load one
into the pool, unload one, delete one from the cache, and residency (what is loaded, what is on disk).
One implementation under the native admin routes and Ollama's pull and delete."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from app.engine import hub
from app.engine.catalog import cache_dir_name, hf_cache_root
from app.engine.entries import LOADED, LOADING, NOT_LOADED
from app.engine.faults import ModelBusy, ModelNotFound, NoHubSource
from app.engine.inventory import available_models
from app.engine.offload import run_blocking, start_blocking
from app.settings import Settings

logger = logging.getLogger(__name__)

PROGRESS_SECONDS = 0.5  # how often a pull reports its bytes (when they changed)
PULLING_MANIFEST, DOWNLOADING, SUCCESS = "pulling manifest", "downloading", "success"


@dataclass(frozen=True)
class PullStep:
    """One step of a pull: the manifest read, bytes so far, or the end (with what was fetched)."""

    status: str
    repo: str
    commit: str
    completed: int = 0
    total: int = 0
    snapshot: str | None = None
    files: tuple[str, ...] = ()


class Pull:
    """A pull whose manifest the hub has given (everything that fails early has): its steps."""

    def __init__(self, manifest: hub.Manifest, settings: Settings) -> None:
        self.manifest, self.settings = manifest, settings

    def steps(self) -> Iterator[PullStep]:
        """The manifest, then the bytes every PROGRESS_SECONDS while they change, then success; a
        failed download raises its fault. A client that leaves does not stop the download."""
        repo, commit = self.manifest.repo, self.manifest.commit
        yield PullStep(PULLING_MANIFEST, repo, commit)
        progress = hub.Progress()
        pending = start_blocking(partial(hub.fetch, self.manifest, self.settings, progress=progress))
        reported = None
        while not pending.done_within(PROGRESS_SECONDS):
            now = (progress.completed, progress.total)
            if progress.total and now != reported:
                reported = now
                yield PullStep(DOWNLOADING, repo, commit, *now)
        snapshot = pending.result()
        files, size = run_blocking(_files_and_size, snapshot)
        logger.info("model %s pulled: %d files, %d bytes, revision %s", repo, len(files), size, commit)
        yield PullStep(DOWNLOADING, repo, commit, size, size)
        yield PullStep(SUCCESS, repo, commit, size, size, str(snapshot), files)


class ModelAdmin:
    """The operations, over the pool (app.engine.pool) and the hub cache."""

    def __init__(self, pool) -> None:
        self.pool = pool
        self.settings: Settings = pool.settings

    def _allowed(self, name: str) -> str:
        """The model id of `name`; ModelNotAllowed unless LLM_ALLOWED_MODELS (or '*') allows it."""
        model_id = self.settings.canonical(name)
        self.pool.check_allowed(model_id)
        return model_id

    def pull(self, name: str, revision: str | None = None, files: tuple[str, ...] = ()) -> Pull:
        """Ask the hub for the model's manifest (404 when it has none); the download is the Pull's."""
        self._allowed(name)
        repo, revision, files = hub.pull_target(self.settings, name, revision, files)
        found = run_blocking(partial(hub.manifest, repo, self.settings, revision=revision, files=files))
        return Pull(found, self.settings)

    def load(self, name: str) -> dict:
        """Load the model now, through the pool (making room under LLM_MAX_LOADED_MODELS)."""
        return self.pool.load(self._allowed(name))

    def unload(self, name: str) -> dict:
        """Drop the model's runners (409 while requests use it); `unloaded` says whether it was loaded."""
        model_id = self._allowed(name)
        unloaded = self.pool.unload(model_id)
        entry = self.pool.entry(model_id)
        return {"model": model_id, "unloaded": unloaded, "state": entry.state if entry else NOT_LOADED}

    def delete(self, name: str) -> dict:
        """Remove the model's folder from the Hugging Face cache (409 while it is loaded)."""
        model_id = self._allowed(name)
        listed = self.settings.catalog.get(model_id)
        if listed is not None and listed.path is not None:
            raise NoHubSource(name, NoHubSource.LOCAL, str(listed.path))
        repo = listed.repo if listed is not None and listed.repo else model_id
        hub.check_hub_id(name, repo)
        folder = hf_cache_root(self.settings) / cache_dir_name(repo)
        entry = self.pool.entry(model_id)
        if entry is None:
            return self._remove(model_id, folder)
        with entry.load_lock:  # no load of it starts from the folder while it goes
            if entry.state in (LOADED, LOADING):
                raise ModelBusy(model_id, "deleted", entry.state, entry.loaded.leases if entry.loaded else 0)
            return self._remove(model_id, folder)

    def _remove(self, model_id: str, folder: Path) -> dict:
        if not folder.is_dir():
            raise ModelNotFound(
                model_id,
                f"Model '{model_id}' is not in the Hugging Face cache ({folder})",
                looked_in=[str(folder)],
            )
        size = run_blocking(_remove_tree, folder)
        logger.info("model %s deleted from the cache: %s (%d bytes)", model_id, folder, size)
        return {"model": model_id, "deleted": str(folder), "size_bytes": size}

    def residency(self) -> dict:
        """Every model the pool knows or the disk holds: its state, and where it is on disk."""
        described = {m["id"]: m for m in self.pool.describe()}
        on_disk = {row["id"]: row for row in run_blocking(available_models, self.settings)}
        models = []
        for model_id in dict.fromkeys([*described, *on_disk]):
            known, found = described.get(model_id) or {}, on_disk.get(model_id)
            models.append(
                {
                    "id": model_id,
                    "state": known.get("state", NOT_LOADED),
                    "active_streams": known.get("active_streams", 0),
                    "loads": known.get("loads", 0),
                    "unloads": known.get("unloads", 0),
                    "on_disk": found is not None,
                    "origin": found["origin"] if found else None,
                    "location": found["location"] if found else None,
                    "size_bytes": found["size_bytes"] if found else None,
                }
            )
        return {
            "models": models,
            "loaded": sum(1 for m in models if m["state"] == LOADED),
            "max_loaded_models": self.settings.max_loaded_models,
            "cache": str(hf_cache_root(self.settings)),
        }


def _files_and_size(snapshot: Path) -> tuple[tuple[str, ...], int]:
    files = sorted(p for p in snapshot.rglob("*") if p.is_file())
    return tuple(p.relative_to(snapshot).as_posix() for p in files), sum(p.stat().st_size for p in files)


def _remove_tree(folder: Path) -> int:
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    shutil.rmtree(folder)
    return size
