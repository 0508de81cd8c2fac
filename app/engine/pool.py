"""Loaded models and their state: which models a request may use, loading at start or on first use
(app.engine.loading does the loading and unloading), leases, readiness, lookup."""

from __future__ import annotations

import logging
import threading
import time

from app.engine import memory
from app.engine.entries import FAILED, LOADED, LOADING, NOT_LOADED, LoadedModel, ModelEntry, Replica
from app.engine.faults import EngineFault, ModelLoadFailed, ModelLoading, ModelNotAllowed
from app.engine.loading import ModelLoader, RunnerFactory, one_line
from app.engine.offload import spawn_background
from app.engine.runner import create_runner
from app.settings import EMBEDDED_MODEL_ID, Settings

logger = logging.getLogger(__name__)

__all__ = ["LoadedModel", "ModelEntry", "ModelPool", "Replica"]


class ModelPool:
    """Every allowed model's entry: an explicit list loads at start (up to LLM_MAX_LOADED_MODELS),
    anything else loads on first request; past the bound the least recently used idle model goes."""

    def __init__(self, settings: Settings, runner_factory: RunnerFactory = create_runner) -> None:
        self.settings = settings
        names = list(settings.allowed_models)
        if settings.allow_any_model:
            names += [m for m in settings.catalog if m not in names]
        self._entries: dict[str, ModelEntry] = {m: self._new_entry(m) for m in names}
        self._entries_lock = threading.Lock()
        self.loader = ModelLoader(settings, self._entries, self._entries_lock, runner_factory)
        self.device, self.device_reason = self.loader.device, self.loader.device_reason
        self.memory = memory.MemoryBound(settings.max_worker_memory_mb, self.loader.recycle)
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
                self.loader.load(entry)
            except Exception as error:  # reported on the entry; the next model still loads
                logger.error("model %s failed to load: %s", model_id, one_line(error))
            finally:
                entry.startup = False

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
            self.loader.load(entry, entry.attempts_done)  # waits for a load in progress, or loads now
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

    def entry(self, name: str) -> ModelEntry | None:
        """The entry of a model (by id or catalog alias), if the pool has one."""
        return self._entries.get(self.settings.canonical(name))

    def load(self, name: str) -> dict:
        """Load a model now (an admin's load; one that failed is tried again) and describe it."""
        model_id = self.settings.canonical(name)
        entry = self.entry(model_id)
        if entry is not None and entry.state == FAILED:
            entry.state, entry.error, entry.failure = NOT_LOADED, None, None
        self.release(self.acquire(model_id))
        return self._entries[model_id].describe()

    def unload(self, name: str) -> bool:
        """Unload an idle model now (ModelBusy while requests hold it or it loads): True when it was
        loaded. Its next request, or a load, brings it back."""
        entry = self.entry(name)
        return entry is not None and self.loader.unload(entry)

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
