"""Loading and unloading models: locating (downloading) one, choosing its engine settings, creating
its runners one load at a time, making room under LLM_MAX_LOADED_MODELS, unloading an idle model on
request, creating again the runner of an idle model whose prefix cache grew, and recording a failed
load on the model's entry."""

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
from app.engine.faults import ModelBusy, NoRoomToLoad
from app.engine.offload import run_blocking
from app.engine.runner import create_runner
from app.settings import Settings

logger = logging.getLogger(__name__)

_FATAL = NOT_FAILURES  # never recorded as a load failure

RunnerFactory = Callable[[ModelSource, EngineConfig], Any]


class ModelLoader:
    """Turns the pool's entries into loaded models and back. It shares the pool's entries and their
    lock (making room looks at every entry); one load runs at a time."""

    def __init__(
        self,
        settings: Settings,
        entries: dict[str, ModelEntry],
        entries_lock: threading.Lock,
        runner_factory: RunnerFactory = create_runner,
    ) -> None:
        self.settings = settings
        self.runner_factory = runner_factory
        self._entries = entries
        self._entries_lock = entries_lock
        self._one_load_at_a_time = threading.Lock()  # a load holds the GIL: parallel loads gain nothing
        self.device, self.device_reason = detect_device()

    def load(self, entry: ModelEntry, attempts_seen: int | None = None) -> None:
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
                run_blocking(self.runner_factory, entry.source, config) for _ in range(config.replicas)
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

    def unload(self, entry: ModelEntry) -> bool:
        """Drop the model's runners now (an admin's unload, Ollama's keep_alive 0): True when it was
        loaded, False when it was not; ModelBusy while it loads or requests hold it. Leases change
        only on the hub and greenlets take turns: none can appear between the check and the drop."""
        if entry.state == LOADING:
            raise ModelBusy(entry.model_id, "unloaded", LOADING)
        if entry.state != LOADED or entry.loaded is None:
            return False
        if entry.loaded.leases:
            raise ModelBusy(entry.model_id, "unloaded", LOADED, entry.loaded.leases)
        self._drop(entry, NOT_LOADED)
        entry.unloads += 1
        logger.info("model %s unloaded on request", entry.model_id)
        return True

    def _failed(self, entry: ModelEntry, error: BaseException) -> None:
        entry.state, entry.error = FAILED, one_line(error)
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


def one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
