"""Downloads from the hub (HF_ENDPOINT, the public hub by default) into the cache under HF_HOME.

Used by the pull command (air-gapped preparation), the admin pull (app.engine.models_admin, with its
progress) and by the pool for a model that is in no local place. huggingface_hub does the HTTP, the
cache layout (blobs, snapshots, refs) and resumption.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from app.engine import catalog
from app.engine.catalog import ModelSource, gguf_models, hf_cache_root
from app.engine.faults import DownloadFailed, EngineFault, ModelNotFound, NoHubSource
from app.engine.offload import run_blocking
from app.settings import Settings

# What a safetensors model needs besides its weights; GGUF files carry everything themselves.
SAFETENSORS_FILES = ("*.json", "*.safetensors", "tokenizer.model", "*.jinja", "*.txt")
CONNECT_TIMEOUT, READ_TIMEOUT = 10.0, 60.0  # a stalled hub or mirror fails instead of hanging a load
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9._-]+$")
logger = logging.getLogger(__name__)


def locate(entry: Any, settings: Settings) -> ModelSource:
    """Resolve a pool entry's model; a model only the hub has is downloaded into the cache first
    (the entry shows the hub source meanwhile)."""
    source = catalog.resolve(entry.model_id, settings)
    if source.origin != "hub":
        return source
    entry.source = source
    where = settings.hf_endpoint or "the public hub"
    logger.info("model %s: downloading %s from %s", entry.model_id, source.location, where)
    snapshot, files = run_blocking(
        partial(
            download, source.location, settings, revision=source.revision or "main", files=source.filenames
        )
    )
    found = catalog.source_in(entry.model_id, snapshot, files, "hub", snapshot.name)
    if found is None:
        raise ModelNotFound(
            entry.model_id, f"Model '{entry.model_id}': the download of {source.location} holds no model"
        )
    return found


@dataclass(frozen=True)
class Manifest:
    """What a pull fetches: `repo` at `commit` (what `revision` named), the file patterns the engine
    loads, and the GGUF files among them (none for a safetensors model)."""

    repo: str
    revision: str
    commit: str
    patterns: tuple[str, ...]
    gguf_files: tuple[str, ...]


@dataclass
class Progress:
    """Bytes of a pull so far, written by the download's threads and read by whoever reports them."""

    completed: int = 0
    total: int = 0


def pull_target(settings: Settings, name: str, revision: str | None, files: tuple[str, ...]) -> tuple:
    """The hub repo, revision and files a pull of `name` (an id or catalog alias) fetches; NoHubSource
    when it cannot come from the hub."""
    model_id = settings.canonical(name)
    entry = settings.catalog.get(model_id)
    if entry is not None and entry.path is not None:
        raise NoHubSource(name, NoHubSource.LOCAL, str(entry.path))
    if settings.hf_hub_offline:
        raise NoHubSource(name, NoHubSource.OFFLINE)
    repo = entry.repo if entry is not None and entry.repo else model_id
    check_hub_id(name, repo)
    revision = revision or (entry.revision if entry is not None else None) or "main"
    return repo, revision, files or (entry.files if entry is not None else ())


def check_hub_id(name: str, repo: str) -> None:
    if not _HUB_ID.match(repo) or ".." in repo:
        raise NoHubSource(name, NoHubSource.NOT_HUB_ID)


def download(
    repo: str,
    settings: Settings,
    *,
    revision: str = "main",
    files: tuple[str, ...] = (),
    progress: bool = False,
) -> tuple[Path, tuple[str, ...]]:
    """Fetch `repo` at `revision` into the cache; return its snapshot directory and the GGUF files
    chosen (none for a safetensors model). `progress`: a progress bar on the terminal."""
    found = manifest(repo, settings, revision=revision, files=files)
    return fetch(found, settings, bar=progress), found.gguf_files


def manifest(
    repo: str, settings: Settings, *, revision: str = "main", files: tuple[str, ...] = ()
) -> Manifest:
    """Ask the hub what `repo` at `revision` holds; only what the engine loads is chosen: the named
    GGUF `files`, else the repo's one GGUF file (or the shards of one), else the safetensors layout."""
    from huggingface_hub import HfApi

    with _hub_errors(repo, revision, settings):
        info = HfApi(endpoint=settings.hf_endpoint).model_info(repo, revision=revision, timeout=READ_TIMEOUT)
        names = [s.rfilename for s in info.siblings or ()]
        patterns = _patterns(repo, names, files)
    gguf_files = tuple(p for p in patterns if p.endswith(".gguf"))
    return Manifest(repo, revision, info.sha or revision, patterns, gguf_files)


def fetch(
    found: Manifest, settings: Settings, *, bar: bool = False, progress: Progress | None = None
) -> Path:
    """Download what `found` names into the cache (resumable, locked by huggingface_hub); its bytes
    are counted in `progress` as they arrive. Return the snapshot directory."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    with _hub_errors(found.repo, found.revision, settings):
        (enable_progress_bars if bar else disable_progress_bars)()
        snapshot = snapshot_download(
            found.repo,
            revision=found.commit,  # the commit the file list came from
            cache_dir=hf_cache_root(settings),
            endpoint=settings.hf_endpoint,
            allow_patterns=list(found.patterns),
            tqdm_class=_counting_bar(progress) if progress is not None else None,
        )
        if found.revision != found.commit:  # a download by commit does not move the ref: do it
            ref = Path(snapshot).parent.parent / "refs" / found.revision
            ref.parent.mkdir(parents=True, exist_ok=True)
            ref.write_text(found.commit)
    return Path(snapshot)


@contextmanager
def _hub_errors(repo: str, revision: str, settings: Settings) -> Iterator[None]:
    """The hub client's errors as the engine's faults: not there, or not reachable."""
    import httpx2
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError
    from huggingface_hub.utils import get_session

    where = settings.hf_endpoint or "the public hub"
    get_session().timeout = httpx2.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)
    try:
        yield
    except EngineFault:
        raise
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as error:
        reason = type(error).__name__.removesuffix("Error").replace("NotFound", " not found").lower()
        raise ModelNotFound(
            repo,
            f"Model '{repo}' (revision {revision}) was not found on {where}: {reason}",
            revision=revision,
            endpoint=where,
        ) from None
    except Exception as error:  # network, disk, HTTP errors: the model exists nowhere we could reach
        raise DownloadFailed(repo, revision, where, _one_line(error)) from None


def _counting_bar(progress: Progress) -> type:
    """A progress bar class for snapshot_download that counts the bytes of all its files into
    `progress` (its bar of written bytes; the other bars it makes count nothing)."""
    from huggingface_hub.utils import tqdm as hf_tqdm

    class CountingBar(hf_tqdm):
        def __init__(self, *args: Any, name: str | None = None, **kwargs: Any) -> None:
            self._counts = name == "huggingface_hub.snapshot_download"
            super().__init__(*args, name=name, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            if self._counts:
                progress.completed += int(n or 0)
                progress.total = max(int(self.total or 0), progress.completed)
            return super().update(n)

    return CountingBar


def _patterns(repo: str, names: list[str], files: tuple[str, ...]) -> tuple[str, ...]:
    if files:
        missing = [f for f in files if f not in names]
        if missing:
            raise ModelNotFound(repo, f"Model '{repo}' has no file {', '.join(missing)}", missing=missing)
        return files
    ggufs = sorted(n for n in names if n.endswith(".gguf"))
    if len(gguf_models(ggufs)) == 1:
        return tuple(ggufs)
    if ggufs:
        raise ModelNotFound(
            repo,
            f"Model '{repo}' holds several GGUF models ({', '.join(ggufs)}); pull one with "
            "--file, or name it with files in LLM_MODELS_FILE",
            files=ggufs,
        )
    if not any(fnmatch.fnmatch(n, "*.safetensors") for n in names):
        raise ModelNotFound(repo, f"Model '{repo}' has neither GGUF nor safetensors weights")
    return SAFETENSORS_FILES


def _one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
