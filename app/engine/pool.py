"""Loaded models and their state: loading at start or on first use, readiness, lookup."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.engine import catalog
from app.engine.catalog import ModelSource
from app.engine.device import EngineConfig, choose_config, detect_device
from app.engine.offload import run_blocking, spawn_background
from app.errors import ModelNotFoundError, ModelNotReadyError
from app.settings import EMBEDDED_MODEL_ID, Settings

logger = logging.getLogger(__name__)

NOT_LOADED, LOADING, LOADED, FAILED = "not loaded", "loading", "loaded", "failed"


@dataclass
class LoadedModel:
    """A model in memory: its runner, and the lock that serialises submission to it."""

    model_id: str
    runner: Any
    source: ModelSource
    config: EngineConfig
    context_length: int | None
    load_seconds: float
    submit_lock: Any = field(default_factory=lambda: threading.Lock())
    active_streams: int = 0


@dataclass
class ModelEntry:
    model_id: str
    state: str = NOT_LOADED
    source: ModelSource | None = None
    error: str | None = None
    loaded: LoadedModel | None = None
    load_lock: Any = field(default_factory=lambda: threading.Lock())

    def describe(self) -> dict:
        info: dict[str, Any] = {"id": self.model_id, "state": self.state, "error": self.error}
        source = self.source
        info["source"] = (
            {"origin": source.origin, "format": source.format, "location": source.location}
            if source
            else None
        )
        loaded = self.loaded
        info["context_length"] = loaded.context_length if loaded else None
        info["engine"] = loaded.config.as_dict() if loaded else None
        info["load_seconds"] = round(loaded.load_seconds, 3) if loaded else None
        info["active_streams"] = loaded.active_streams if loaded else 0
        return info


RunnerFactory = Callable[[ModelSource, EngineConfig], Any]


def create_runner(source: ModelSource, config: EngineConfig) -> Any:
    """Load weights into a mistralrs Runner (the only place that constructs one)."""
    import mistralrs

    if source.format == "gguf":
        which = mistralrs.Which.GGUF(
            quantized_model_id=source.location, quantized_filename=list(source.filenames)
        )
    else:
        which = mistralrs.Which.Plain(model_id=source.location)
    return mistralrs.Runner(
        which=which,
        max_seqs=config.max_seqs,
        prefix_cache_n=config.prefix_cache_n,
        in_situ_quant=config.in_situ_quant,
        token_source="cache" if source.origin == "hub" else "none",
    )


class ModelPool:
    """Every allowed model's entry; explicit lists load at start, '*' loads on first request."""

    def __init__(self, settings: Settings, runner_factory: RunnerFactory = create_runner) -> None:
        self.settings = settings
        self._runner_factory = runner_factory
        self._entries: dict[str, ModelEntry] = {m: ModelEntry(m) for m in settings.allowed_models}
        self._entries_lock = threading.Lock()
        self.device, self.device_reason = detect_device()
        self.started = False

    # -- start-up -------------------------------------------------------------------------------
    def start(self) -> None:
        """Begin loading every listed model in the background (call in the serving process)."""
        self.started = True
        logger.info("engine device: %s (%s)", self.device, self.device_reason)
        for entry in self._entries.values():
            entry.state = LOADING
        if self._entries:
            spawn_background(self.load_all)

    def load_all(self) -> None:
        self.started = True
        for entry in list(self._entries.values()):
            self._load(entry)

    def _load(self, entry: ModelEntry) -> None:
        with entry.load_lock:
            if entry.state == LOADED:
                return
            entry.state, entry.error = LOADING, None
            started = time.perf_counter()
            try:
                entry.source = catalog.resolve(entry.model_id, self.settings)
                config = choose_config(self.settings, entry.source, self.device, self.device_reason)
                runner = run_blocking(self._runner_factory, entry.source, config)
                context_length = run_blocking(runner.max_sequence_length)
            except Exception as error:  # any load failure is reported, never fatal to the worker
                entry.state, entry.error = FAILED, _one_line(error)
                logger.error("model %s failed to load: %s", entry.model_id, entry.error)
                return
            seconds = time.perf_counter() - started
            entry.loaded = LoadedModel(entry.model_id, runner, entry.source, config, context_length, seconds)
            entry.state = LOADED
            logger.info(
                "model %s loaded in %.2fs from %s (%s); %s",
                entry.model_id,
                seconds,
                entry.source.origin,
                entry.source.location,
                "; ".join(config.reasons),
            )

    # -- requests -------------------------------------------------------------------------------
    @property
    def allowed(self) -> list[str]:
        return list(self.settings.allowed_models)

    def default_model(self) -> str:
        return self.settings.allowed_models[0] if self.settings.allowed_models else EMBEDDED_MODEL_ID

    def knows(self, model_id: str) -> bool:
        """An allowed model, or one seen under '*' (so client-chosen names never become labels)."""
        return model_id in self._entries

    def check_allowed(self, model_id: str) -> None:
        if not self.settings.allow_any_model and model_id not in self._entries:
            raise ModelNotFoundError(
                f"Model '{model_id}' is not allowed; allowed models: {', '.join(self.allowed)}",
                details={"model": model_id, "allowed": self.allowed},
            )

    def acquire(self, model_id: str | None) -> LoadedModel:
        """The loaded model for a request; loads it first under '*'; raises 404 or 503."""
        model_id = model_id or self.default_model()
        self.check_allowed(model_id)
        entry = self._entries.get(model_id)
        if entry is None:
            with self._entries_lock:
                entry = self._entries.setdefault(model_id, ModelEntry(model_id))
        if entry.state == LOADED and entry.loaded is not None:
            return entry.loaded
        if self.settings.allow_any_model and model_id not in self.settings.allowed_models:
            self._load(entry)
            if entry.state == LOADED and entry.loaded is not None:
                return entry.loaded
            if entry.error and entry.error.startswith("Model '"):
                # not resolvable anywhere: forget it so the listing stays about real models
                with self._entries_lock:
                    self._entries.pop(model_id, None)
                raise ModelNotFoundError(entry.error, details={"model": model_id})
        if entry.state == FAILED:
            raise ModelNotReadyError(
                f"Model '{model_id}' failed to load: {entry.error}",
                details={"model": model_id, "state": entry.state},
            )
        raise ModelNotReadyError(
            f"Model '{model_id}' is {entry.state}; retry shortly",
            details={"model": model_id, "state": entry.state},
            headers={"Retry-After": "2"},
        )

    def readiness(self) -> tuple[bool, dict]:
        """Ready when every listed model is loaded (and at once under '*')."""
        listed = [self._entries[m] for m in self.settings.allowed_models]
        waiting = [e.model_id for e in listed if e.state in (NOT_LOADED, LOADING)]
        failed = {e.model_id: e.error for e in listed if e.state == FAILED}
        if not self.started and listed:
            return False, {"reason": "models have not started loading", "loading": waiting}
        if failed:
            return False, {"reason": "a model failed to load", "failed": failed, "loading": waiting}
        if waiting:
            return False, {"reason": "models are loading", "loading": waiting}
        return True, {"models": [e.model_id for e in listed]}

    def describe(self) -> list[dict]:
        with self._entries_lock:
            entries = list(self._entries.values())
        return [entry.describe() for entry in entries]


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
