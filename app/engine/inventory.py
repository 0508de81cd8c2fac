"""The models this host has on disk, found without any network: the catalog, the embedded model,
LLM_MODEL_PATH and the Hugging Face cache (`python -m app models`, the admin residency listing)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from app.engine import catalog
from app.engine.faults import ModelNotFound
from app.settings import EMBEDDED_MODEL_ID, Settings


def available_models(settings: Settings) -> list[dict]:
    """Every model this host can serve without a network: catalog, embedded, LLM_MODEL_PATH, cache."""
    rows: list[dict] = []
    seen: set[str] = set()

    def add(model_id: str, source: catalog.ModelSource | None) -> None:
        if source is None or model_id in seen:
            return
        seen.add(model_id)
        location = Path(source.location)
        paths = [location / f for f in source.filenames] if source.filenames else location.rglob("*")
        rows.append(
            {
                "id": model_id,
                "format": source.format,
                "origin": source.origin,
                "location": source.location,
                "files": list(source.filenames),
                "revision": source.revision,
                "size_bytes": sum(p.stat().st_size for p in paths if p.is_file()),
            }
        )

    offline = _offline(settings)
    candidates = [*settings.catalog, EMBEDDED_MODEL_ID]
    if settings.model_path is not None and settings.model_path.is_dir():
        directories = [*settings.model_path.glob("*"), *settings.model_path.glob("*/*")]
        candidates += sorted(
            str(p.relative_to(settings.model_path))
            for p in directories
            if p.is_dir() and (any(p.glob("*.gguf")) or (p / "config.json").is_file())
        )
    cache_root = catalog.hf_cache_root(settings)
    candidates += sorted(
        p.name.removeprefix("models--").replace("--", "/") for p in cache_root.glob("models--*")
    )
    for model_id in candidates:
        try:
            source = catalog.resolve(model_id, offline)
        except ModelNotFound:
            continue
        add(model_id, source if source.origin != "hub" else None)
    return rows


def _offline(settings: Settings) -> Settings:
    return replace(settings, hf_hub_offline=True)
