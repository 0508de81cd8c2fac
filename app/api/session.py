"""A generation's life, owned by one object: model lease, slot, engine streams, deadline, disconnect
watch, and the metrics, span and log line of its one outcome.

Every API shell (native, OpenAI) opens a session, encodes what it yields, and never releases
anything by hand: `close()` (or leaving the `with` block) records the real outcome once and frees
everything once, whatever happened.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any, NoReturn

from greenlet import GreenletExit

from app.api import key_share
from app.api.cuts import CANCELLED, TIMEOUT, cut_error, draining_error, gone_error
from app.api.disconnect import DisconnectWatch
from app.engine import (
    Chunk,
    Completion,
    GenerationRequest,
    Stream,
    complete_raw,
    completion,
    open_stream,
)
from app.engine.embedding import check_kind, embed
from app.engine.faults import KeyShareUsed, SlotsBusy
from app.engine.types import EmbeddingRequest
from app.errors import ApiError
from app.fault_errors import api_error
from app.keys_file import ApiKey
from app.observability.logging import request_id_var
from app.observability.track import RequestTrack, combine

logger = logging.getLogger(__name__)

BACKGROUND_WAIT_SECONDS = 86400.0  # a background unit waits for the capacity interactive work leaves
# The request's own greenlet or response ended: nobody is waiting for an answer.
_GONE = (GeneratorExit, GreenletExit, KeyboardInterrupt, SystemExit)


class GenerationSession:
    """One request's generations (one per choice), from arrival to its single outcome."""

    def __init__(
        self,
        services: Any,
        endpoint: str,
        requests: list[GenerationRequest],
        environ: dict,
        timeout: float | None = None,
        key: ApiKey | None = None,
    ) -> None:
        self.services = services
        self.requests = requests
        self.key = key
        self.key_name = key.name if key else ""
        self.request_id = request_id_var.get()
        self.track = RequestTrack(services, endpoint, requests[0], environ, self.key_name)
        self._arrived = time.monotonic()
        self.deadline = self._arrived + timeout if timeout else None
        self.cut: str | None = None  # set once by interrupt(): timeout, cancelled or shutdown
        self.streams: list[Stream] = []
        self.results: list[Completion] = []
        self.waited = 0.0
        self._model: Any = None
        self._slot_at: float | None = None
        self._wake = threading.Event()
        self._watch: DisconnectWatch | None = DisconnectWatch(environ, lambda: self.interrupt(CANCELLED))
        self._generated = False  # every choice reached its own finish
        self._closed = False
        self.freed = threading.Event()  # set by close(): the slot and the model are given back
        # a unit of background work (app/store/work.py) runs in the lowest lane and may be cancelled
        self._unit = environ.get("llm.unit")
        self.background = self._unit is not None
        if self.background:
            self._unit.session = self
            self.cut = self._unit.cancelled
        services.sessions.add(self)

    # -- interruptions, from other greenlets (disconnect watch, drain) or the deadline ------------
    def interrupt(self, reason: str) -> None:
        """End the generation early for `reason`; the first reason wins, a finished one stays."""
        if self.cut is not None or self._generated or self._closed:
            return
        self.cut = reason
        self._wake.set()
        for stream in self.streams:
            stream.wake()

    def _time_left(self) -> float | None:
        """Seconds to the deadline (None: no deadline); at the deadline, the session is cut."""
        if self.deadline is None:
            return None
        left = self.deadline - time.monotonic()
        if left <= 0:
            self.interrupt(TIMEOUT)
            return 0.0
        return left

    def _cut_error(self) -> ApiError:
        """What a request cut before (or instead of) an answer gets."""
        return cut_error(self.cut, self.deadline - self._arrived if self.deadline else None)

    # -- before the first byte ------------------------------------------------------------------
    def open(self, streaming: bool = False) -> GenerationSession:
        """Everything that can fail before a response begins: the model, a slot, submission and the
        first token (raw prompts, which cannot stream: the whole generation). Raises our errors,
        already recorded."""
        try:
            if self.services.drain.draining:  # in-flight work finishes; new work goes to another replica
                raise draining_error()
            self.services.quotas.check(self.key)
            self._model = self.services.pool.acquire(self.requests[0].model)
            embedding = isinstance(self.requests[0], EmbeddingRequest)
            check_kind(self._model, embedding, self.services.pool.embedding_models)
            self._take_slot()
            if embedding:
                self.results = [embed(self._model, self.requests[0], self._arrived)]
                self.results[0].timings.queue_seconds = self.waited
                self._generated = True
                return self
            if self.requests[0].raw and not streaming:  # one blocking engine call per choice
                self.results = [complete_raw(self._model, r, self._arrived) for r in self.requests]
                self._generated = True
                for result in self.results:
                    result.timings.queue_seconds += self.waited
                timings = self.results[0].timings
                if self.results[0].usage.completion_tokens:
                    ago = timings.total_seconds - timings.time_to_first_token_seconds
                    self.track.first_token(seconds_ago=ago)
                return self
            for index, request in enumerate(self.requests):
                stream = open_stream(
                    self._model,
                    request,
                    prime=False,
                    abandoned=lambda: self.cut is not None,
                    started=self._arrived,
                )
                if stream is None:  # the client left (or the deadline passed) at the prefill gate
                    raise self._cut_error()
                self.streams.append(stream)
                if self.cut:
                    raise self._cut_error()
                if index == 0:
                    self._prime(self.streams[0])
            for stream in self.streams:  # the slot's wait and the prefill gate's
                stream.timings.queue_seconds = self.waited + stream.gate_seconds
                self.track.gate_waited(stream.gate_seconds)
            self.track.first_token()
            return self
        except BaseException as error:
            self._fail(error)

    def _take_slot(self) -> None:
        limiter = self.services.limiter
        left = self._time_left()
        wait = limiter.timeout if left is None else min(limiter.timeout, left)
        started = time.monotonic()
        try:
            share = self.key.max_concurrent if self.key else None
            if share is not None and limiter.held_by(self.key_name) >= share:
                key_share.settle_departed(self)
            if self.background:  # the lowest lane waits as long as interactive work keeps the slots
                wait = self._time_left() or BACKGROUND_WAIT_SECONDS
            granted = (
                limiter.acquire(
                    wait,
                    self._wake,
                    self.key_name,
                    share,
                    background=self.background,
                    priority=self.key.priority if self.key else 0,
                )
                if not self.cut
                else False
            )
        except KeyShareUsed as fault:
            fault.held_by = key_share.holders(self)
            raise
        except SlotsBusy:
            self.track.slot_refused(time.monotonic() - started)
            if left is not None and left < limiter.timeout:  # the deadline, not the queue, is short
                self.interrupt(TIMEOUT)
                raise self._cut_error() from None
            raise
        self.waited = time.monotonic() - started
        if granted:
            self._slot_at = time.monotonic()
            self.track.slot_granted(self.waited)
        else:
            self.track.slot_refused(self.waited)  # left the queue: its wait counts all the same
        if self.cut or not granted:
            raise self._cut_error()

    def client_gone(self) -> bool:
        """The client has closed its connection, looked at now (its disconnect watch may not have
        run yet)."""
        return self._watch is not None and self._watch.gone()

    def _prime(self, stream: Stream) -> None:
        while not stream.prime(self._time_left()):
            if self.cut or self._time_left() == 0.0:
                raise self._cut_error()

    # -- generating -----------------------------------------------------------------------------
    def batches(self) -> Iterator[tuple[int, list[Chunk]]]:
        """(choice index, chunks that arrived together), choice after choice, until each finishes or
        the session is cut. A deadline ends the choices with finish_reason `timeout`; any other cut
        or failure raises our error, already recorded."""
        try:
            for index, stream in enumerate(self.streams):
                while not self.cut:
                    batch = stream.next_batch(self._time_left())
                    if batch is None:
                        break
                    if batch:
                        yield index, batch
                if self.cut:
                    break
        except BaseException as error:
            self._fail(error)
        if self.cut == TIMEOUT:
            for stream in self.streams:
                stream.stop(TIMEOUT)
        elif self.cut:
            raise self.close(self._cut_error())
        self._generated = True

    def complete(self) -> list[Completion]:
        """Whole generations: each choice's chunks joined (a deadline keeps the text so far)."""
        if self.results:
            return self.results
        collected: list[list[Chunk]] = [[] for _ in self.streams]
        for index, batch in self.batches():
            collected[index].extend(batch)
        if self.cut == TIMEOUT and not any(collected):
            raise self.close(self._cut_error())
        self.results = [completion(s, chunks) for s, chunks in zip(self.streams, collected, strict=True)]
        return self.results

    # -- the one exit ---------------------------------------------------------------------------
    def _fail(self, error: BaseException) -> NoReturn:
        """Close with `error` and raise it as our error; a closed response or a killed greenlet
        (the client is gone) is re-raised as it is, recorded as a cancellation."""
        failure = self.close(error)
        if failure is None or isinstance(error, _GONE):
            raise error
        raise failure from None

    def __enter__(self) -> GenerationSession:
        return self

    def __exit__(self, kind: Any, error: BaseException | None, traceback: Any) -> None:
        self.close(error)

    def close(self, error: BaseException | None = None) -> ApiError | None:
        """Record the outcome and free everything, once. Returns `error` as our error (an engine
        panic becomes an engine_error) for the caller to raise or encode."""
        if isinstance(error, _GONE):
            error = None  # the response was closed before the end: a cancellation (below)
        failure = api_error(error) if error is not None else None
        if self._closed:
            return failure
        self._closed = True
        if self._watch is not None:
            self._watch.stop()
        for stream in self.streams:
            stream.close()
        if self._slot_at is not None:
            self.services.limiter.release(
                time.monotonic() - self._slot_at, self.key_name, background=self.background
            )
        if self._model is not None:
            self.services.pool.release(self._model)
        self.services.sessions.discard(self)
        self.freed.set()
        if failure is None and self.cut not in (None, TIMEOUT):
            failure = self._cut_error()
        elif failure is None and not self._generated:
            failure = gone_error()
        if failure is not None and failure.status in (500, 502):
            logger.error("generation failed: %s", failure.message, exc_info=error)
        result = combine(self.results or self.streams) if (self.results or self.streams) else None
        usage = getattr(result, "usage", None)
        used = usage.total_tokens if usage else getattr(result, "tokens_seen", 0)
        self.services.quotas.record(self.key, used)
        outcome = TIMEOUT if failure is None and self.cut == TIMEOUT else None
        self.track.finish(result, failure, outcome=outcome)
        return failure
