"""The work loop: one greenlet per worker that claims background responses and batch items and runs
them in the lowest lane of the limiter, through the same HTTP handlers an interactive request uses
(in process, as the unit's API key), so every rule (validation, quotas, shares, limits) applies.

Each unit's outcome is committed on its own, and only while this replica still holds its lease: a unit
whose replica died runs again elsewhere, and no outcome is recorded twice. On SIGTERM the loop claims
nothing more and gives back what it holds; on start it takes back at once what its previous life
held (same LLM_REPLICA_ID). A unit that was cut so LLM_WORK_MAX_ATTEMPTS times fails.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from app.engine.offload import spawn_background
from app.store import lifecycle, units
from app.store.db import Database
from app.store.settings import StoreSettings

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0
# New background work starts only after interactive requests have been quiet this long (the limiter's
# lowest lane): a person's next message, typed within it, finds the engine without new batch items.
QUIET_SECONDS = 2.0
CLEANUP_SECONDS = 3600.0
# Steady interactive traffic must not keep background work from ever finishing: a unit preempted this
# often runs to its end the next time it starts, and when no unit has finished for STARVED_SECONDS
# while work waits, one unit starts without the quiet moment (and is not preempted).
MAX_PREEMPTIONS = 3
STARVED_SECONDS = 60.0
RETRY_STATUSES = (429, 503)  # capacity, quota, drain, storage: the unit waits and runs later


@dataclass(eq=False)
class Unit:
    """A background response or a batch item, claimed by this replica."""

    kind: str  # "response" or "item"
    id: str  # the response id, or the batch id
    owner: str
    path: str
    body: dict
    attempts: int
    line: int | None = None
    custom_id: str | None = None
    traceparent: str | None = None
    session: Any = None  # the generation session, once the handler opened it
    cancelled: str | None = None
    preempted: bool = False
    steady: bool = False  # runs to its end: not preempted (see MAX_PREEMPTIONS, STARVED_SECONDS)

    @property
    def key(self) -> tuple:
        return (self.kind, self.id, self.line)

    def cancel(self, reason: str = "cancelled") -> None:
        self.cancelled = self.cancelled or reason
        if self.session is not None:
            self.session.interrupt(reason)


class WorkLoop:
    def __init__(self, db: Database, settings: StoreSettings, capacity: int) -> None:
        self.db = db
        self.settings = settings
        self.capacity = capacity
        self.running: dict[tuple, Unit] = {}
        self.app: Any = None
        self.limiter: Any = None
        self.draining = False
        self._wake = threading.Event()
        self._renewed = 0.0
        self._cleaned = 0.0
        self._backoff_until = 0.0
        self._owners_waiting: dict[str, float] = {}  # a key over its share or quota → when to try again
        self.started = False
        self.preemptions = 0
        self._preempted: dict[tuple, int] = {}  # a unit's preemptions on this replica
        self._progress_at = time.time()  # a unit finished, or nothing waited

    # -- control, from request handlers and the worker ------------------------------------------
    def start(self, app: Any) -> None:
        self.app = app
        self.limiter = app.extensions["llm"].limiter
        self.limiter.on_interactive = self.preempt
        self.started = True
        spawn_background(self._loop)

    def wake(self) -> None:
        self._wake.set()

    def cancel_local(self, response_id: str) -> None:
        unit = self.running.get(("response", response_id, None))
        if unit is not None:
            unit.cancel()

    def cancel_batch_local(self, batch_id: str, reason: str = "cancelled") -> None:
        for unit in list(self.running.values()):
            if unit.kind == "item" and unit.id == batch_id:
                unit.cancel(reason)

    def preempt(self) -> None:
        """An interactive request came: the background work running ends now and runs again later
        (its attempt not counted), so the person's request has the engine to itself."""
        for unit in list(self.running.values()):
            if unit.session is not None and unit.cancelled is None and not unit.steady:
                unit.preempted = True
                unit.session.interrupt("preempted")

    def begin_drain(self) -> None:
        """From the SIGTERM handler: a flag and a spawn. The drain itself writes to the store, which a
        signal handler must not do (it may interrupt the event loop, or a greenlet holding the store)."""
        self.draining = True
        spawn_background(self.drain)

    def drain(self) -> None:
        """SIGTERM: claim nothing more; what runs is cut and its claim given back at once."""
        self.draining = True
        for unit in list(self.running.values()):
            unit.cancel("shutdown")
        try:
            units.give_back(self.db, self.settings.replica_id)
        except Exception:
            logger.exception("work: could not give back the claims on drain")
        self._wake.set()

    # -- the loop -------------------------------------------------------------------------------
    def _loop(self) -> None:
        try:
            taken = units.give_back(self.db, self.settings.replica_id)
            if taken:
                logger.info("work: %d units this replica was running when it stopped run again", taken)
        except Exception:
            logger.exception("work: could not take back this replica's units")
        while not self.draining:
            try:
                self._tick()
            except Exception:
                logger.exception("work: tick failed")
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()

    def _tick(self) -> None:
        now = time.time()
        lease = self.settings.lease_seconds
        if self.running and now - self._renewed > lease / 3:
            units.renew(self.db, self.settings.replica_id, now + lease)
            self._renewed = now
        lifecycle.advance(self.db, now, self.settings.retention_seconds)
        self._cancel_stopped()
        if now - self._cleaned > CLEANUP_SECONDS:
            removed = lifecycle.clean(self.db, now, self.settings.retention_seconds)
            if removed:
                logger.info("retention (LLM_RETENTION_DAYS): removed %s", removed)
            self._cleaned = now
        free = self.capacity - len(self.running)
        if free <= 0 or now < self._backoff_until or self.draining:
            return
        quiet = self.limiter.interactive_quiet(QUIET_SECONDS)
        starved = not self.running and now - self._progress_at > STARVED_SECONDS
        if not quiet and not starved:
            return  # the next tick looks again
        self._owners_waiting = {o: t for o, t in self._owners_waiting.items() if t > now}
        skip = set(self._owners_waiting)
        claimed = units.claim(
            self.db, self.settings.replica_id, now, lease, free if quiet else 1, skip_owners=skip
        )
        if not claimed:
            self._progress_at = now  # nothing waits: nothing starves
        for unit in claimed:
            if unit.attempts > self.settings.max_attempts:
                self._give_up(unit)
                continue
            unit.steady = not quiet or self._preempted.get(unit.key, 0) >= MAX_PREEMPTIONS
            self.running[unit.key] = unit
            spawn_background(functools.partial(self._run, unit))

    def _cancel_stopped(self) -> None:
        """Units cancelled elsewhere (another replica's API, a cancelled or expired batch)."""
        if not self.running:
            return
        stopped = units.stopped(self.db, list(self.running.values()))
        for unit in list(self.running.values()):
            if unit.key in stopped:
                unit.cancel()

    def _give_up(self, unit: Unit) -> None:
        message = (
            f"the server stopped while running this {self.settings.max_attempts} times "
            "(LLM_WORK_MAX_ATTEMPTS); it is not run again"
        )
        logger.error("work: %s %s %s: %s", unit.kind, unit.id, unit.custom_id or "", message)
        units.record(
            self.db, unit, self.settings.replica_id, 500, None, None, error=("server_error", message)
        )

    # -- one unit -------------------------------------------------------------------------------
    def _run(self, unit: Unit) -> None:
        try:
            status, body, request_id = self._call(unit)
            if unit.cancelled or unit.preempted or status in RETRY_STATUSES or status == 499:
                if unit.preempted:
                    self.preemptions += 1
                    self._preempted[unit.key] = self._preempted.get(unit.key, 0) + 1
                units.release(self.db, unit, self.settings.replica_id)
                if status == 429:  # this key's share or quota: other keys' work goes on meanwhile
                    self._owners_waiting[unit.owner] = time.time() + POLL_SECONDS
                elif status in RETRY_STATUSES:
                    self._backoff_until = time.time() + POLL_SECONDS
            else:
                units.record(self.db, unit, self.settings.replica_id, status, body, request_id)
                self._preempted.pop(unit.key, None)
                self._progress_at = time.time()
        except Exception:
            logger.exception("work: %s %s failed to record", unit.kind, unit.id)
        finally:
            self.running.pop(unit.key, None)
            self._wake.set()

    def _call(self, unit: Unit) -> tuple[int, Any, str | None]:
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        links = []
        if unit.traceparent:
            parent = trace.get_current_span(
                TraceContextTextMapPropagator().extract({"traceparent": unit.traceparent})
            )
            links.append(trace.Link(parent.get_span_context()))
        tracer = trace.get_tracer(__name__)
        name = "batch item" if unit.kind == "item" else "background response"
        with tracer.start_as_current_span(
            name, links=links, context=trace.set_span_in_context(trace.INVALID_SPAN)
        ) as span:
            span.set_attribute("llm.work.id", unit.id)
            if unit.custom_id is not None:
                span.set_attribute("llm.batch.custom_id", unit.custom_id)
            client = self.app.test_client()
            request_id = f"{unit.kind}-{uuid.uuid4().hex}"
            response = client.post(
                unit.path,
                json=unit.body,
                headers={"X-Request-ID": request_id},
                environ_base={"llm.unit": unit, "REMOTE_ADDR": "127.0.0.1"},
            )
            span.set_attribute("http.status_code", response.status_code)
            return response.status_code, response.get_json(silent=True), request_id
