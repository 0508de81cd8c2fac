"""Streams over the engine: submission, the first chunk before any byte is sent, cancellation.

Every call into the runner goes through its replica (app.engine.concurrency: the submit lock, the
prefill gate, off the gevent hub). Non-streaming requests use a stream inside too,
so no request holds the runner for a whole generation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from app.engine import prefix_trim
from app.engine.concurrency import NOT_FAILURES
from app.engine.engine_errors import context_too_long, prompt_tokens, translate_error
from app.engine.faults import RawCannotStream
from app.engine.mapping import to_chunk, to_engine_chat_request, to_engine_completion_request, to_usage
from app.engine.offload import gevent_active
from app.engine.pool import LoadedModel, Replica
from app.engine.pump import DirectSource, PumpedSource
from app.engine.types import Chunk, Completion, GenerationRequest, Timings, Usage

# a closed generator, a killed greenlet, an exiting process: never an engine failure
_FATAL = NOT_FAILURES


# -- streams --------------------------------------------------------------------------------------
class Stream:
    """A live generation in the engine. Iterate `batches()` (or the stream) for chunks; `close()`
    (or the end) cancels it.

    The first chunk is fetched by `open_stream`, so engine errors raise before any byte is sent.
    Dropping the engine iterator is what stops the sequence inside the engine.
    """

    def __init__(
        self,
        model: LoadedModel,
        replica: Replica,
        iterator: Iterator[Any],
        request: GenerationRequest,
        on_first: Callable[[], Any] | None = None,
        started: float | None = None,
    ):
        self.model = model
        self.replica = replica  # the runner generating it, counted busy until close()
        self.request = request
        source_type = PumpedSource if gevent_active() else DirectSource
        self._source: DirectSource | PumpedSource | None = source_type(iterator, to_chunk, on_first)
        self._pending: list[Chunk] = []
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.timings = Timings()
        # timings count from the request's arrival (time.monotonic), else from submission
        self._started = time.monotonic() if started is None else started
        self._first_at: float | None = None
        self.tokens_seen = 0
        self._text: list[str] = []  # kept for the prefix cache's account of what the engine holds
        self.gate_seconds = 0.0  # waited at the prefill gate before submission

    def next_batch(self, timeout: float | None = None) -> list[Chunk] | None:
        """The chunks that have arrived together (one write), waiting up to `timeout` seconds;
        [] when the wait ran out or `wake` was called, None once the stream has ended. Engine
        failures, panics included, raise as our faults (app.engine.faults)."""
        if self._pending:
            batch, self._pending = self._pending, []
            return batch
        if self._source is None or self.finish_reason is not None:
            self.close()
            return None
        try:
            chunks = self._source.take(timeout)
        except _FATAL:
            self.close()
            raise
        except BaseException as error:  # pyo3's PanicException is a BaseException
            self.close()
            raise translate_error(error, self.model, self.request) from error
        if chunks is None:
            self.close()
            return None
        for chunk in chunks:
            self._record(chunk)
        return chunks

    def _record(self, chunk: Chunk) -> None:
        now = time.monotonic()
        self.tokens_seen += 1
        self._text.append(chunk.text)
        if self._first_at is None:
            self._first_at = now
            self.timings.time_to_first_token_seconds = now - self._started
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.finish_reason is not None:
            self.finish_reason = chunk.finish_reason
            self.timings.total_seconds = now - self._started
            decode = now - self._first_at
            tokens = self.usage.completion_tokens if self.usage else 0
            if tokens > 1 and decode > 0:
                self.timings.completion_tokens_per_second = (tokens - 1) / decode
            self._cached()

    def _cached(self) -> None:
        """The engine ended the sequence and keeps its KV cache: account for it (and trim past the
        budget, in the background)."""
        account = self.replica.prefix_cache
        if account is None:
            return
        usage = self.usage or Usage(0, self.tokens_seen)
        account.finished(self.request, "".join(self._text), usage.prompt_tokens + usage.completion_tokens)

    def prime(self, timeout: float | None = None) -> bool:
        """Wait (up to `timeout`) for the first chunks, so that engine errors raise before any byte
        of a response is sent. False when the wait ended without them."""
        while not self._pending:
            batch = self.next_batch(timeout)
            if batch is None:
                return True
            if not batch:
                return False
            self._pending = batch
        return True

    def wake(self) -> None:
        """End a wait in `next_batch` or `prime` early."""
        if self._source is not None:
            self._source.wake()

    def stop(self, reason: str) -> None:
        """End the generation here (a deadline): the engine stops it, `reason` is its finish, and
        its usage counts the prompt's tokens (without the template's) and the tokens produced."""
        self.close()
        if self.finish_reason is None:
            self.finish_reason = reason
            self.timings.total_seconds = time.monotonic() - self._started
        if self.usage is None:
            self.usage = Usage(prompt_tokens(self.model, self.request), self.tokens_seen)

    def __iter__(self) -> Iterator[Chunk]:
        while (batch := self.next_batch()) is not None:
            yield from batch

    def close(self) -> None:
        """Stop the generation in the engine. Safe to call twice."""
        if self._source is not None:
            self._source.cancel()
            self._source = None
            self.model.give(self.replica)
            prefix_trim.after_generation(self.model, self.replica, open_stream)


def open_stream(
    model: LoadedModel,
    request: GenerationRequest,
    prime: bool = True,
    replica: Replica | None = None,
    count: bool = True,
    abandoned: Callable[[], bool] | None = None,
    started: float | None = None,
) -> Stream | None:
    """Submit a chat-templated generation (on `replica`, else the least busy); with `prime`, wait
    for its first chunk so that engine errors raise here, before any byte of a response is sent.
    `count`: a client's request (False for the server's own cache warming). None when `abandoned()`
    turned true while the request waited at the prefill gate: it is never submitted. `started`: when
    the request arrived (time.monotonic), which its timings count from (default: now)."""
    if request.raw:
        raise RawCannotStream()
    request = fit_context(model, request)
    engine_request = to_engine_chat_request(request)
    replica = model.take(replica)
    gate_seconds = replica.enter_gate(abandoned)  # released by the engine's first answer
    if gate_seconds is None:  # nobody waits for it: never prefilled
        model.give(replica)
        return None
    try:
        iterator = replica.call(replica.runner.send_chat_completion_request, engine_request)
    except BaseException as error:  # a panic at submission too
        model.give(replica)
        replica.leave_gate()
        if isinstance(error, _FATAL):
            raise
        raise translate_error(error, model, request) from error
    if count and replica.prefix_cache is not None:
        replica.prefix_cache.admit(request)
    stream = Stream(model, replica, iter(iterator), request, replica.gate_release, started)
    stream.gate_seconds = gate_seconds
    if prime or (
        replica.gate_release is not None and not gevent_active()
    ):  # in-process: nothing else frees it
        stream.prime()
    return stream


def fit_context(model: LoadedModel, request: GenerationRequest) -> GenerationRequest:
    """Enforce a catalog context cap (max_context) below the model's own: a prompt that fills it is
    refused; max_tokens is cut so that prompt and completion fit. Without a cap the engine checks."""
    cap = model.config.max_context
    if not cap or cap != model.context_length:
        return request
    tokens = prompt_tokens(model, request)
    if tokens >= cap:
        raise context_too_long(request, tokens, cap)
    if tokens + request.sampling.max_tokens <= cap:
        return request
    return replace(request, sampling=replace(request.sampling, max_tokens=cap - tokens))


def completion(stream: Stream, chunks: list[Chunk]) -> Completion:
    """A stream's chunks joined into one completion (text, logprobs and tool calls); a stream cut
    before its usage arrived counts the tokens it produced."""
    return Completion(
        model=stream.request.model,
        text="".join(chunk.text for chunk in chunks),
        finish_reason=stream.finish_reason or "stop",
        usage=stream.usage or Usage(0, stream.tokens_seen),
        timings=stream.timings,
        logprobs=tuple(entry for chunk in chunks for entry in chunk.logprobs),
        tool_calls=tuple(call for chunk in chunks for call in chunk.tool_calls),
    )


def complete_raw(model: LoadedModel, request: GenerationRequest, started: float | None = None) -> Completion:
    """Raw prompts skip the chat template; the engine offers them only as one blocking call.
    `started`: when the request arrived (time.monotonic), which its timings count from."""
    started = time.monotonic() if started is None else started
    request = fit_context(model, request)
    engine_request = to_engine_completion_request(request)
    replica = model.take()
    gate_seconds = replica.enter_gate() or 0.0
    submitted = time.monotonic()
    try:  # the call holds the runner until the generation ends
        response = replica.call(replica.runner.send_completion_request, engine_request)
    except _FATAL:
        raise
    except BaseException as error:
        raise translate_error(error, model, request) from error
    finally:
        model.give(replica)
        replica.leave_gate()
    elapsed = time.monotonic() - started
    choice = response.choices[0]
    usage = to_usage(response.usage) or Usage(0, 0)
    if replica.prefix_cache is not None:
        replica.prefix_cache.finished(request, choice.text, usage.prompt_tokens + usage.completion_tokens)
        prefix_trim.after_generation(model, replica, open_stream)
    engine_usage = response.usage
    prefill = float(getattr(engine_usage, "total_prompt_time_sec", 0.0))
    timings = Timings(
        queue_seconds=gate_seconds,  # the session adds its wait for a slot
        time_to_first_token_seconds=min(elapsed, submitted - started + prefill),
        total_seconds=elapsed,
        completion_tokens_per_second=float(getattr(engine_usage, "avg_compl_tok_per_sec", 0.0)),
    )
    return Completion(request.model, choice.text, choice.finish_reason, usage, timings)
