"""Loaded models and their state: loading at start or on first use, unloading past the bound,
readiness, lookup."""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from app.engine import hub, memory, prefix_cache
from app.engine.catalog import ModelSource
from app.engine.concurrency import NOT_FAILURES
from app.engine.device import EngineConfig, choose_config, detect_device
from app.engine.entries import (
    CHAT,
    FAILED,
    LOADED,
    LOADING,
    NOT_LOADED,
    LoadedModel,
    ModelEntry,
    Replica,
    kind_of,
)
from app.engine.faults import EngineFault, ModelLoadFailed, ModelLoading, ModelNotAllowed, NoRoomToLoad
from app.engine.offload import run_blocking, spawn_background
from app.engine.runner import create_runner
from app.settings import EMBEDDED_MODEL_ID, Settings

logger = logging.getLogger(__name__)

_FATAL = NOT_FAILURES  # never recorded as a load failure

RunnerFactory = Callable[[ModelSource, EngineConfig], Any]
__all__ = ["LoadedModel", "ModelEntry", "ModelPool", "Replica"]


class ModelPool:
    """Every allowed model's entry: an explicit list loads at start (up to LLM_MAX_LOADED_MODELS),
    anything else loads on first request; past the bound the least recently used idle model goes."""

    def __init__(self, settings: Settings, runner_factory: RunnerFactory = create_runner) -> None:
        self.settings = settings
        self._runner_factory = runner_factory
        names = list(settings.allowed_models)
        if settings.allow_any_model:
            names += [m for m in settings.catalog if m not in names]
        self._entries: dict[str, ModelEntry] = {m: self._new_entry(m) for m in names}
        self._entries_lock = threading.Lock()
        self._one_load_at_a_time = threading.Lock()  # a load holds the GIL: parallel loads gain nothing
        self.device, self.device_reason = detect_device()
        self.memory = memory.MemoryBound(settings.max_worker_memory_mb, self.recycle)
        self.started = False

    def _new_entry(self, model_id: str) -> ModelEntry:
        entry = self.settings.catalog.get(model_id)
        return ModelEntry(model_id, alias=entry.alias if entry else None)

    @property
    def startup_models(self) -> list[str]:
        """The listed models loaded at start: all of them, or the first LLM_MAX_LOADED_MODELS."""
        listed = list(self.settings.allowed_models)
        bound = self.settings.max_loaded_models
        return listed[:bound] if bound else listed

    # -- start-up -------------------------------------------------------------------------------
    def start(self) -> None:
        """Begin loading the start-up models in the background (call in the serving process)."""
        self.started = True
        logger.info("engine device: %s (%s)", self.device, self.device_reason)
        for model_id in self.startup_models:
            entry = self._entries[model_id]
            entry.state, entry.startup = LOADING, True
        if self.startup_models:
            spawn_background(self.load_all)

    def load_all(self) -> None:
        self.started = True
        for model_id in self.startup_models:
            entry = self._entries[model_id]
            entry.startup = True
            try:
                self._load(entry)
            except Exception as error:  # reported on the entry; the next model still loads
                logger.error("model %s failed to load: %s", model_id, _one_line(error))
            finally:
                entry.startup = False

    def _load(self, entry: ModelEntry, attempts_seen: int | None = None) -> None:
        """Load `entry` unless it is loaded, or (given `attempts_seen`) another request's attempt
        ended while this one waited: concurrent first requests share one load and its outcome.
        A download runs outside the one-load-at-a-time lock: other models load and serve meanwhile."""
        with entry.load_lock:
            if entry.state == LOADED or (attempts_seen is not None and entry.attempts_done != attempts_seen):
                return
            try:
                started = time.perf_counter()
                config = self._find(entry)
                if config is not None:
                    with self._one_load_at_a_time:
                        self._create(entry, config, started)
            finally:
                entry.attempts_done += 1

    def _find(self, entry: ModelEntry) -> EngineConfig | None:
        """Locate (download) the model and choose its engine settings; None when that failed (recorded
        on the entry)."""
        entry.state, entry.error, entry.failure = LOADING, None, None
        try:
            entry.source = hub.locate(entry, self.settings)
            return choose_config(
                self.settings,
                entry.source,
                self.device,
                self.device_reason,
                self.settings.catalog.get(entry.model_id),
            )
        except _FATAL:
            raise
        except BaseException as error:  # the engine's panics are BaseExceptions too
            self._failed(entry, error)
            return None

    def _create(self, entry: ModelEntry, config: EngineConfig, started: float) -> None:
        """Make room, then create the runner; a failure is recorded on the entry, except
        NoRoomToLoad (no room now), which the request gets as a 503."""
        try:
            self._make_room(entry)
        except NoRoomToLoad:
            entry.state = NOT_LOADED
            raise
        try:
            runners = [
                run_blocking(self._runner_factory, entry.source, config) for _ in range(config.replicas)
            ]
            context_length = run_blocking(runners[0].max_sequence_length)
        except _FATAL:
            raise
        except BaseException as error:
            self._failed(entry, error)
            return
        if config.max_context and (context_length is None or config.max_context < context_length):
            context_length = config.max_context
        seconds = time.perf_counter() - started
        keeps_account = config.prefix_cache_mb and kind_of(entry.source) == CHAT
        token_bytes = prefix_cache.kv_token_bytes(entry.source) if keeps_account else 0
        replicas = [
            Replica(
                runner,
                prefill_gate=threading.Lock() if config.serial_prefill else None,
                prefix_cache=(
                    prefix_cache.PrefixCacheAccount(config.prefix_cache_mb * memory.MB, token_bytes)
                    if keeps_account
                    else None
                ),
            )
            for runner in runners
        ]
        entry.loaded = LoadedModel(entry.model_id, replicas, entry.source, config, context_length, seconds)
        entry.state, entry.loads, entry.last_used = LOADED, entry.loads + 1, time.monotonic()
        logger.info(
            "model %s loaded in %.2fs from %s (%s); %s",
            entry.model_id,
            seconds,
            entry.source.origin,
            entry.source.location,
            "; ".join(config.reasons),
        )

    def recycle(self) -> list[str]:
        """Create again the runner of every idle model with a prefix cache (which the engine never
        evicts on CPU); dropping the old runner frees what its cache held."""
        recycled = []
        for entry in list(self._entries.values()):
            if not entry.idle or not entry.loaded.config.prefix_cache_n:
                continue
            with entry.load_lock:
                if not entry.idle:
                    continue
                config = entry.loaded.config
                self._drop(entry, LOADING)
                with self._one_load_at_a_time:
                    self._create(entry, config, time.perf_counter())
                entry.recycles += 1
                recycled.append(entry.model_id)
        return recycled

    def _failed(self, entry: ModelEntry, error: BaseException) -> None:
        entry.state, entry.error = FAILED, _one_line(error)
        entry.failure = error if isinstance(error, Exception) else RuntimeError(entry.error)
        logger.error("model %s failed to load: %s", entry.model_id, entry.error)

    def _make_room(self, entry: ModelEntry) -> None:
        """Unload least recently used idle models until `entry` fits under LLM_MAX_LOADED_MODELS."""
        bound = self.settings.max_loaded_models
        if not bound:
            return
        with self._entries_lock:
            resident = [e for e in self._entries.values() if e is not entry and e.state in (LOADED, LOADING)]
            while len(resident) >= bound:
                idle = [e for e in resident if e.idle]
                if not idle:
                    raise NoRoomToLoad(entry.model_id, bound)
                victim = min(idle, key=lambda e: e.last_used)
                self._unload(victim, f"to make room for {entry.model_id}")
                resident.remove(victim)

    def _unload(self, entry: ModelEntry, why: str) -> None:
        self._drop(entry, NOT_LOADED)
        entry.unloads += 1
        logger.info(
            "model %s unloaded (least recently used, LLM_MAX_LOADED_MODELS=%d) %s",
            entry.model_id,
            self.settings.max_loaded_models,
            why,
        )

    @staticmethod
    def _drop(entry: ModelEntry, state: str) -> None:
        """Drop the model's runner; the engine frees its memory when the last reference goes."""
        entry.loaded, entry.state = None, state
        gc.collect()
        memory.trim()

    # -- requests -------------------------------------------------------------------------------
    @property
    def allowed(self) -> list[str]:
        return list(self.settings.allowed_models)

    def default_model(self) -> str:
        return self.settings.allowed_models[0] if self.settings.allowed_models else EMBEDDED_MODEL_ID

    def knows(self, name: str) -> bool:
        """An allowed model, or one seen under '*' (so client-chosen names never become labels)."""
        return self.settings.canonical(name) in self._entries

    def check_allowed(self, name: str | None) -> None:
        model_id = self.settings.canonical(name) if name else self.default_model()
        if not self.settings.allow_any_model and model_id not in self._entries:
            raise ModelNotAllowed(name, self.allowed)

    def acquire(self, name: str | None) -> LoadedModel:
        """The loaded model for a request (by id or catalog alias). A model that is not loaded is
        loaded now, unless the worker's start is still loading it (503, retry)."""
        model_id = self.settings.canonical(name) if name else self.default_model()
        self.check_allowed(model_id)
        with self._entries_lock:
            entry = self._entries.get(model_id)
            if entry is None:
                entry = self._entries.setdefault(model_id, self._new_entry(model_id))
        entry.last_used = time.monotonic()
        if entry.state == LOADED and entry.loaded is not None:
            return self._lease(entry.loaded)
        listed = model_id in self.settings.allowed_models
        if entry.state == LOADING and entry.startup:
            raise ModelLoading(model_id, entry.state)
        if entry.state == FAILED and listed and not entry.loads:  # failed at start: fix and restart
            raise ModelLoadFailed(model_id, entry.state, entry.error)
        try:
            self._load(entry, entry.attempts_done)  # waits for a load in progress, or loads now
        finally:
            if entry.state != LOADED and not listed and model_id not in self.settings.catalog:
                with self._entries_lock:  # a name a client chose: listed only once it has loaded
                    if self._entries.get(model_id) is entry and entry.state != LOADING:
                        del self._entries[model_id]
        if entry.state == LOADED and entry.loaded is not None:
            entry.last_used = time.monotonic()
            return self._lease(entry.loaded)
        if isinstance(entry.failure, EngineFault):
            raise entry.failure
        raise ModelLoadFailed(model_id, entry.state, entry.error)

    @staticmethod
    def _lease(model: LoadedModel) -> LoadedModel:
        model.leases += 1
        return model

    def release(self, model: LoadedModel) -> None:
        """The request that acquired `model` is done with it (it may be unloaded once idle); past the
        memory bound, idle models are recycled."""
        model.leases -= 1
        self.memory.check()

    def readiness(self) -> tuple[bool, dict]:
        """Ready when every start-up model has loaded (at once under '*'); one unloaded since to make
        room (LLM_MAX_LOADED_MODELS) loads again on its next request and keeps the worker ready."""
        listed = [self._entries[m] for m in self.startup_models]
        waiting = [e.model_id for e in listed if e.state in (NOT_LOADED, LOADING) and not e.loads]
        failed = {e.model_id: e.error for e in listed if e.state == FAILED and not e.loads}
        if not self.started and listed:
            return False, {"reason": "models have not started loading", "loading": waiting}
        if failed:
            return False, {"reason": "a model failed to load", "failed": failed, "loading": waiting}
        if waiting:
            return False, {"reason": "models are loading", "loading": waiting}
        return True, {"models": [e.model_id for e in listed]}

    def embedding_models(self) -> list[str]:
        """The models known to make embeddings (found or loaded)."""
        return [m["id"] for m in self.describe() if m.get("kind") == "embedding"]

    def describe(self) -> list[dict]:
        with self._entries_lock:
            entries = list(self._entries.values())
        return [entry.describe() for entry in entries]


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
