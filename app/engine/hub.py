"""Downloads from the hub (HF_ENDPOINT, the public hub by default) into the cache under HF_HOME.

Used by the pull command (air-gapped preparation) and by the pool for a model that is in no local
place. huggingface_hub does the HTTP, the cache layout (blobs, snapshots, refs) and resumption.
"""

from __future__ import annotations

import fnmatch
import logging
from functools import partial
from pathlib import Path
from typing import Any

from app.engine import catalog
from app.engine.catalog import ModelSource, gguf_models, hf_cache_root
from app.engine.faults import DownloadFailed, EngineFault, ModelNotFound
from app.engine.offload import run_blocking
from app.settings import Settings

# What a safetensors model needs besides its weights; GGUF files carry everything themselves.
SAFETENSORS_FILES = ("*.json", "*.safetensors", "tokenizer.model", "*.jinja", "*.txt")
CONNECT_TIMEOUT, READ_TIMEOUT = 10.0, 60.0  # a stalled hub or mirror fails instead of hanging a load
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


def download(
    repo: str,
    settings: Settings,
    *,
    revision: str = "main",
    files: tuple[str, ...] = (),
    progress: bool = False,
) -> tuple[Path, tuple[str, ...]]:
    """Fetch `repo` at `revision` into the cache; return its snapshot directory and the GGUF files
    chosen (none for a safetensors model).

    Only what the engine loads is fetched: the named GGUF `files`, else the repo's one GGUF file (or
    the shards of one), else the safetensors layout.
    """
    import httpx2
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars, get_session

    endpoint = settings.hf_endpoint
    where = endpoint or "the public hub"
    get_session().timeout = httpx2.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)
    try:
        info = HfApi(endpoint=endpoint).model_info(repo, revision=revision, timeout=READ_TIMEOUT)
        names = [s.rfilename for s in info.siblings or ()]
        patterns = _patterns(repo, names, files)
        (enable_progress_bars if progress else disable_progress_bars)()
        snapshot = snapshot_download(
            repo,
            revision=info.sha or revision,  # the commit the file list came from
            cache_dir=hf_cache_root(settings),
            endpoint=endpoint,
            allow_patterns=list(patterns),
        )
        if info.sha and revision != info.sha:  # a download by commit does not move the ref: do it
            ref = Path(snapshot).parent.parent / "refs" / revision
            ref.parent.mkdir(parents=True, exist_ok=True)
            ref.write_text(info.sha)
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
    gguf_files = tuple(p for p in patterns if p.endswith(".gguf"))
    return Path(snapshot), gguf_files


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
