"""A model's entry in the pool (state, source, counts) and the loaded model it holds."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from app.engine.catalog import ModelSource
from app.engine.concurrency import Replica
from app.engine.device import EngineConfig

NOT_LOADED, LOADING, LOADED, FAILED = "not loaded", "loading", "loaded", "failed"
CHAT, EMBEDDING = "chat", "embedding"


def kind_of(source: ModelSource | None) -> str | None:
    """What a model does: `embedding` for a sentence-transformers folder (modules.json beside the
    weights, as EmbeddingGemma and Qwen3-Embedding ship), else `chat`; None before it is found."""
    if source is None or not source.format:
        return None
    if source.format == "safetensors" and (Path(source.location) / "modules.json").is_file():
        return EMBEDDING
    return CHAT


@dataclass
class LoadedModel:
    """A model in memory: its runners (replicas)."""

    model_id: str
    replicas: list[Replica]
    source: ModelSource
    config: EngineConfig
    context_length: int | None
    load_seconds: float
    leases: int = 0  # requests holding the model, from acquire to release
    chat_template: Any = None  # app.engine.templates.ChatTemplate, read on first use
    vocab_size: int | None = None  # read on first use (app.engine.tokens)

    @property
    def runner(self) -> Any:
        """The first replica's runner, for work that needs any one (tokens, templates)."""
        return self.replicas[0].runner

    @property
    def active_streams(self) -> int:
        return sum(replica.active_streams for replica in self.replicas)

    def take(self, replica: Replica | None = None) -> Replica:
        """The replica with the fewest running generations (or the one given), counted as running
        one more (the caller gives it back with `give`)."""
        replica = replica or min(self.replicas, key=lambda r: r.active_streams)
        replica.active_streams += 1
        return replica

    @staticmethod
    def give(replica: Replica) -> None:
        replica.active_streams -= 1
        if replica.running <= 0:
            replica.idle.set()

    def prefix_cache_state(self) -> dict | None:
        """The server's account of each runner's prefix cache, summed (None when not kept)."""
        accounts = [replica.prefix_cache for replica in self.replicas if replica.prefix_cache is not None]
        if not accounts:
            return None
        states = [account.describe() for account in accounts]
        total = {name: sum(state[name] for state in states) for name in states[0] if name != "trimming"}
        total["trimming"] = any(state["trimming"] for state in states)
        return total

    @cached_property
    def kind(self) -> str:
        """Read once: the request path asks it for every generation."""
        return kind_of(self.source) or CHAT


@dataclass
class ModelEntry:
    model_id: str
    alias: str | None = None
    state: str = NOT_LOADED
    source: ModelSource | None = None
    error: str | None = None
    failure: Exception | None = None
    loaded: LoadedModel | None = None
    startup: bool = False  # being loaded by the worker's start (requests get 503 until it ends)
    loads: int = 0
    attempts_done: int = 0  # load attempts that have ended, successful or not
    unloads: int = 0
    recycles: int = 0  # runner created again to free memory (LLM_MAX_WORKER_MEMORY_MB)
    last_used: float = 0.0
    load_lock: Any = field(default_factory=lambda: threading.Lock())

    @property
    def idle(self) -> bool:
        """Loaded and held by no request: the only kind of model that may be unloaded."""
        return self.state == LOADED and self.loaded is not None and self.loaded.leases == 0

    def describe(self) -> dict:
        info: dict[str, Any] = {
            "id": self.model_id,
            "alias": self.alias,
            "state": self.state,
            "error": self.error,
        }
        source = self.source
        info["source"] = (
            {
                "origin": source.origin,
                "format": source.format or None,
                "location": source.location,
                "files": list(source.filenames),
                "revision": source.revision,
            }
            if source
            else None
        )
        loaded = self.loaded
        info["kind"] = kind_of(source)
        info["format"] = source.format or None if source else None
        info["quantization"] = _quantization(source, loaded.config if loaded else None)
        info["context_length"] = loaded.context_length if loaded else None
        info["device"] = loaded.config.device if loaded else None
        info["engine"] = loaded.config.as_dict() if loaded else None
        info["load_seconds"] = round(loaded.load_seconds, 3) if loaded else None
        info["loads"], info["unloads"], info["recycles"] = self.loads, self.unloads, self.recycles
        info["active_streams"] = loaded.active_streams if loaded else 0
        info["prefix_cache"] = loaded.prefix_cache_state() if loaded else None
        return info


_GGUF_TYPE = re.compile(r"(?i)(?:^|[.-])((?:I?Q\d(?:_[A-Z0-9]+)*)|BF16|F16|F32)(?:[.-]|$)")


def _quantization(source: ModelSource | None, config: EngineConfig | None) -> dict | None:
    """The weights' own type (a GGUF's from its file name; a safetensors model's dtype) and the
    in-situ quantization applied at load."""
    if source is None or not source.format:
        return None
    weights = None
    if source.format == "gguf" and source.filenames:
        match = _GGUF_TYPE.search(source.filenames[0].removesuffix(".gguf"))
        weights = match.group(1).upper() if match else "gguf"
    elif config is not None:
        weights = config.dtype
    return {"weights": weights, "in_situ": config.in_situ_quant if config else None}
