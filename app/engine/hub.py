"""Downloads from the hub (HF_ENDPOINT, the public hub by default) into the cache under HF_HOME.

Used by the pull command (air-gapped preparation) and by the pool for a model that is in no local
place. huggingface_hub does the HTTP, the cache layout (blobs, snapshots, refs) and resumption.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

from app.engine.catalog import hf_cache_root
from app.errors import ModelNotFoundError, ModelNotReadyError
from app.settings import Settings

# What a safetensors model needs besides its weights; GGUF files carry everything themselves.
SAFETENSORS_FILES = ("*.json", "*.safetensors", "tokenizer.model", "*.jinja", "*.txt")


def download(
    repo: str,
    settings: Settings,
    *,
    revision: str = "main",
    files: tuple[str, ...] = (),
    progress: bool = False,
) -> Path:
    """Fetch `repo` at `revision` into the cache; return its snapshot directory.

    Only what the engine loads is fetched: the named GGUF `files`, else the repo's one GGUF file,
    else the safetensors layout.
    """
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    endpoint = settings.hf_endpoint
    where = endpoint or "the public hub"
    try:
        info = HfApi(endpoint=endpoint).model_info(repo, revision=revision)
        names = [s.rfilename for s in info.siblings or ()]
        patterns = _patterns(repo, names, files)
        (enable_progress_bars if progress else disable_progress_bars)()
        snapshot = snapshot_download(
            repo,
            revision=revision,
            cache_dir=hf_cache_root(settings),
            endpoint=endpoint,
            allow_patterns=list(patterns),
        )
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as error:
        reason = type(error).__name__.removesuffix("Error").replace("NotFound", " not found").lower()
        raise ModelNotFoundError(
            f"Model '{repo}' (revision {revision}) was not found on {where}: {reason}",
            details={"model": repo, "revision": revision, "endpoint": where},
        ) from None
    except Exception as error:  # network, disk, HTTP errors: the model exists nowhere we could reach
        raise ModelNotReadyError(
            f"Model '{repo}' could not be downloaded from {where}: {_one_line(error)}",
            details={"model": repo, "revision": revision, "endpoint": where},
        ) from None
    return Path(snapshot)


def _patterns(repo: str, names: list[str], files: tuple[str, ...]) -> tuple[str, ...]:
    if files:
        missing = [f for f in files if f not in names]
        if missing:
            raise ModelNotFoundError(
                f"Model '{repo}' has no file {', '.join(missing)}",
                details={"model": repo, "missing": missing},
            )
        return files
    ggufs = [n for n in names if n.endswith(".gguf")]
    if len(ggufs) == 1 or (ggufs and all("-of-" in n for n in ggufs)):
        return tuple(ggufs)
    if ggufs:
        raise ModelNotFoundError(
            f"Model '{repo}' holds several GGUF files ({', '.join(sorted(ggufs))}); pull one with "
            "--file, or name it with files in LLM_MODELS_FILE",
            details={"model": repo, "files": sorted(ggufs)},
        )
    if not any(fnmatch.fnmatch(n, "*.safetensors") for n in names):
        raise ModelNotFoundError(
            f"Model '{repo}' has neither GGUF nor safetensors weights",
            details={"model": repo},
        )
    return SAFETENSORS_FILES


def _one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
