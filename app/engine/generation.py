"""Our request -> engine request; engine chunks -> our chunks; the engine error table; cancellation.

Every call into the runner goes through `run_blocking` (off the gevent hub) and every submission holds
the model's submit lock (the runner is not re-entrant). Non-streaming requests use a stream inside too,
so no request holds the runner for a whole generation.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

from app.engine.offload import gevent_active, run_blocking
from app.engine.pool import LoadedModel
from app.engine.pump import DirectSource, PumpedSource
from app.engine.types import Chunk, Completion, GenerationRequest, Timings, Usage
from app.errors import (
    ApiError,
    BadRequestError,
    ChatTemplateMissingError,
    ContextTooLongError,
    EngineError,
)


# -- requests -------------------------------------------------------------------------------------
def to_engine_chat_request(request: GenerationRequest) -> Any:
    import mistralrs

    s = request.sampling
    return mistralrs.ChatCompletionRequest(
        messages=request.chat_messages(),
        model=request.model,
        max_tokens=s.max_tokens,
        temperature=s.temperature,
        top_p=s.top_p,
        top_k=s.top_k,
        stop_seqs=list(s.stop) or None,
        stream=True,
    )


def to_engine_completion_request(request: GenerationRequest) -> Any:
    import mistralrs

    s = request.sampling
    return mistralrs.CompletionRequest(
        prompt=request.prompt or "",
        model=request.model,
        max_tokens=s.max_tokens,
        temperature=s.temperature,
        top_p=s.top_p,
        top_k=s.top_k,
        stop_seqs=list(s.stop) or None,
    )


def to_usage(engine_usage: Any) -> Usage | None:
    if engine_usage is None:
        return None
    return Usage(int(engine_usage.prompt_tokens), int(engine_usage.completion_tokens))


def to_chunk(response: Any) -> Chunk:
    choice = response.choices[0] if response.choices else None
    text = (choice.delta.content or "") if choice is not None else ""
    finish = choice.finish_reason if choice is not None else None
    return Chunk(text=text, finish_reason=finish, usage=to_usage(getattr(response, "usage", None)))


# -- errors ---------------------------------------------------------------------------------------
def _context_too_long(match: re.Match, model: LoadedModel, request: GenerationRequest) -> ApiError:
    limit = int(match.group(1))
    text = (
        request.prompt
        if request.prompt is not None
        else "".join(m.get("content", "") for m in request.messages)
    )
    with model.submit_lock:
        tokens = len(run_blocking(model.runner.tokenize_text, text, True, None))
    measured = "is" if request.raw else "is at least"
    return ContextTooLongError(
        f"The prompt {measured} {tokens} tokens, more than the model's context length of {limit} "
        "tokens; shorten it",
        details={"prompt_tokens": tokens, "context_length": limit},
    )


def _no_chat_template(match: re.Match, model: LoadedModel, request: GenerationRequest) -> ApiError:
    return ChatTemplateMissingError(
        f"Model '{model.model_id}' has no chat template, so it cannot chat; use /api/generate "
        "with raw=true, or give the model a chat template",
        details={"model": model.model_id},
    )


def _busy(match: re.Match, model: LoadedModel, request: GenerationRequest) -> ApiError:
    error = EngineError("The engine is busy; retry", headers={"Retry-After": "1"})
    error.status = 503
    return error


# One row per engine message we recognise; anything else is a server fault, never the client's.
ERROR_TABLE: list[tuple[re.Pattern, Callable[[re.Match, LoadedModel, GenerationRequest], ApiError]]] = [
    (re.compile(r"Prompt sequence length is greater than (\d+)"), _context_too_long),
    (re.compile(r"does not have a chat template"), _no_chat_template),
    (re.compile(r"Already borrowed"), _busy),
]


def translate_error(error: Exception, model: LoadedModel, request: GenerationRequest) -> ApiError:
    if isinstance(error, ApiError):
        return error
    text = str(error)
    for pattern, build in ERROR_TABLE:
        match = pattern.search(text)
        if match:
            return build(match, model, request)
    first_line = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return EngineError(f"The engine failed: {first_line}", details={"model": model.model_id})


# -- streams --------------------------------------------------------------------------------------
class Stream:
    """A live generation in the engine. Iterate `batches()` (or the stream) for chunks; `close()`
    (or the end) cancels it.

    The first chunk is fetched by `open_stream`, so engine errors raise before any byte is sent.
    Dropping the engine iterator is what stops the sequence inside the engine.
    """

    def __init__(self, model: LoadedModel, iterator: Iterator[Any], request: GenerationRequest):
        self.model = model
        self.request = request
        source_type = PumpedSource if gevent_active() else DirectSource
        self._source: DirectSource | PumpedSource | None = source_type(iterator, to_chunk)
        self._pending: list[Chunk] = []
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.timings = Timings()
        self._started = time.perf_counter()
        self._first_at: float | None = None
        self.tokens_seen = 0
        model.active_streams += 1

    @property
    def decode_seconds(self) -> float | None:
        """From the first token to the last (None until both exist)."""
        if self._first_at is None or not self.timings.total_seconds:
            return None
        return self.timings.total_seconds - self.timings.time_to_first_token_seconds

    def _take(self) -> list[Chunk]:
        if self._source is None:
            return []
        try:
            chunks = self._source.take()
        except Exception as error:
            self.close()
            raise translate_error(error, self.model, self.request) from error
        if not chunks:
            self.close()
            return []
        for chunk in chunks:
            self._record(chunk)
        return chunks

    def _record(self, chunk: Chunk) -> None:
        now = time.perf_counter()
        self.tokens_seen += 1
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

    def prime(self) -> None:
        self._pending = self._take()

    def batches(self) -> Iterator[list[Chunk]]:
        """Chunks in the groups they arrived in (one write each); ends after the finishing chunk."""
        try:
            while True:
                batch, self._pending = (self._pending or self._take()), []
                if not batch:
                    return
                yield batch
                if batch[-1].finish_reason is not None:
                    return
        finally:
            self.close()

    def __iter__(self) -> Iterator[Chunk]:
        for batch in self.batches():
            yield from batch

    def close(self) -> None:
        """Stop the generation in the engine. Safe to call twice."""
        if self._source is not None:
            self._source.cancel()
            self._source = None
            self.model.active_streams -= 1


def open_stream(model: LoadedModel, request: GenerationRequest) -> Stream:
    """Submit a chat-templated generation and wait for its first chunk (errors raise here)."""
    if request.raw:
        raise BadRequestError(
            "raw: streaming is not available with raw=true (the engine has no streaming raw "
            "completion); use POST /api/generate for raw prompts",
            details={"field": "raw"},
        )
    engine_request = to_engine_chat_request(request)
    try:
        with model.submit_lock:
            iterator = run_blocking(model.runner.send_chat_completion_request, engine_request)
    except Exception as error:
        raise translate_error(error, model, request) from error
    stream = Stream(model, iter(iterator), request)
    stream.prime()
    return stream


def complete(model: LoadedModel, request: GenerationRequest) -> Completion:
    """A whole generation: through a stream, or the engine's completion call for raw prompts."""
    if request.raw:
        return _complete_raw(model, request)
    stream = open_stream(model, request)
    text = "".join(chunk.text for chunk in stream)
    usage = stream.usage or Usage(0, 0)
    return Completion(request.model, text, stream.finish_reason or "stop", usage, stream.timings)


def _complete_raw(model: LoadedModel, request: GenerationRequest) -> Completion:
    """Raw prompts skip the chat template; the engine offers them only as one blocking call."""
    started = time.perf_counter()
    engine_request = to_engine_completion_request(request)
    try:
        with model.submit_lock:
            response = run_blocking(model.runner.send_completion_request, engine_request)
    except Exception as error:
        raise translate_error(error, model, request) from error
    elapsed = time.perf_counter() - started
    choice = response.choices[0]
    usage = to_usage(response.usage) or Usage(0, 0)
    engine_usage = response.usage
    timings = Timings(
        time_to_first_token_seconds=float(getattr(engine_usage, "total_prompt_time_sec", 0.0)),
        total_seconds=elapsed,
        completion_tokens_per_second=float(getattr(engine_usage, "avg_compl_tok_per_sec", 0.0)),
    )
    return Completion(request.model, choice.text, choice.finish_reason, usage, timings)
