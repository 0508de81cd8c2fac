"""Constructing a mistralrs Runner from a located model and its engine settings."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

from app.catalog_file import is_template_text
from app.engine.catalog import ModelSource
from app.engine.device import EngineConfig
from app.engine.entries import EMBEDDING, kind_of

_DTYPES = {"auto": "Auto", "f32": "F32", "f16": "F16", "bf16": "BF16"}


def create_runner(source: ModelSource, config: EngineConfig) -> Any:
    """Load weights into a mistralrs Runner (the only place that constructs one). Every source is a
    local path by now, so the engine never reaches for the network."""
    import mistralrs

    dtype = getattr(mistralrs.ModelDType, _DTYPES[config.dtype])
    if source.format == "gguf":
        which = mistralrs.Which.GGUF(
            quantized_model_id=source.location, quantized_filename=list(source.filenames), dtype=dtype
        )
    elif kind_of(source) == EMBEDDING:
        which = mistralrs.Which.Embedding(model_id=source.location, dtype=dtype)
    else:
        which = mistralrs.Which.Plain(model_id=source.location, dtype=dtype)
    return mistralrs.Runner(
        which=which,
        max_seqs=config.max_seqs,
        prefix_cache_n=config.prefix_cache_n,
        in_situ_quant=config.in_situ_quant,
        token_source="none",
        jinja_explicit=_template_file(config.chat_template),
    )


def _template_file(template: str | None) -> str | None:
    """The engine reads a template from a .jinja file: the catalog's file, or its text written to one
    (named by its content, so reloads reuse it)."""
    if template is None or not is_template_text(template):
        return template  # a .jinja file (checked when the catalog was read)
    digest = hashlib.sha256(template.encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"llm-chat-template-{digest}.jinja"
    if not path.is_file():
        path.write_text(template, encoding="utf-8")
    return str(path)
