"""What generate and chat views share: defaults and limits, the slot, the engine call, the stream.

Every generation is tracked once (metrics, span, log line) whatever its outcome.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from flask import Response, current_app
from flask import request as http_request

from app.api import sse
from app.engine import (
    Chunk,
    Completion,
    GenerationRequest,
    Grammar,
    Sampling,
    Stream,
    Timings,
    Usage,
    collect,
    complete,
    open_stream,
)
from app.errors import ApiError, UnprocessableError, envelope
from app.observability.track import RequestTrack

logger = logging.getLogger(__name__)


def services() -> Any:
    return current_app.extensions["llm"]


def build_request(
    body: dict,
    *,
    grammar: Grammar | None = None,
    tools: tuple[str, ...] = (),
    logprobs: bool = False,
    top_logprobs: int | None = None,
    **content: Any,
) -> GenerationRequest:
    """Apply the settings' defaults and limits to a validated body (native or /v1, same rules)."""
    llm = services()
    settings = llm.settings
    max_tokens = body.get("max_tokens") or settings.default_max_tokens
    if max_tokens > settings.max_tokens_limit:
        raise UnprocessableError(
            f"max_tokens: {max_tokens} is above the limit of {settings.max_tokens_limit} "
            "(LLM_MAX_TOKENS_LIMIT)",
            details={"fields": {"max_tokens": [f"Must be at most {settings.max_tokens_limit}."]}},
        )
    temperature = body.get("temperature")
    temperature = settings.default_temperature if temperature is None else temperature
    if body.get("seed") is not None and temperature > 0:
        raise UnprocessableError(
            "seed: per-request seeds are not supported by the engine; send temperature 0 "
            "(greedy, reproducible) with a seed, or omit the seed",
            details={"fields": {"seed": ["Only allowed with temperature 0."]}},
        )
    top_p = body.get("top_p")
    sampling = Sampling(
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=settings.default_top_p if top_p is None else top_p,
        top_k=body.get("top_k"),
        min_p=body.get("min_p"),
        presence_penalty=body.get("presence_penalty"),
        frequency_penalty=body.get("frequency_penalty"),
        repetition_penalty=body.get("repetition_penalty"),
        logit_bias=tuple((int(k), v) for k, v in (body.get("logit_bias") or {}).items()),
        stop=tuple(body.get("stop") or ()),
        seed=body.get("seed"),
        logprobs=logprobs,
        top_logprobs=top_logprobs,
    )
    model = body.get("model") or llm.pool.default_model()
    return GenerationRequest(model=model, sampling=sampling, grammar=grammar, tools=tools, **content)


def native_grammar(body: dict) -> Grammar | None:
    """The native API's `format` (\"json\" or a JSON schema) or `regex`, as an engine grammar."""
    output_format, regex = body.get("format"), body.get("regex")
    if output_format is not None and regex is not None:
        raise UnprocessableError(
            "format: give either format or regex, not both",
            details={"fields": {"format": ["Not allowed together with regex."]}},
        )
    if regex is not None:
        return Grammar("regex", regex)
    if output_format is None:
        return None
    if output_format == "json":
        output_format = {"type": "object"}
    if not isinstance(output_format, dict):
        raise UnprocessableError(
            'format: must be "json" or a JSON schema object',
            details={"fields": {"format": ['Must be "json" or a JSON schema object.']}},
        )
    return Grammar("json_schema", json.dumps(output_format))


def _take_slot(llm: Any, track: RequestTrack) -> float:
    try:
        llm.pool.check_allowed(track.request.model)  # an unknown model is 404 before any wait
    except ApiError as error:
        track.finish(error=error)
        raise
    try:
        waited = llm.limiter.acquire()
    except ApiError as error:
        track.slot_refused(llm.limiter.timeout)
        track.finish(error=error)
        raise
    track.slot_granted(waited)
    return waited


class StreamEncoder(Protocol):
    """Turns a stream's life into SSE text: the native events, or OpenAI's chunks."""

    def begin(self, count: int) -> str: ...

    def chunk(self, index: int, chunk: Chunk) -> str: ...

    def end(self, streams: list[Stream]) -> str: ...

    def error(self, error: ApiError) -> str: ...


@dataclass
class Combined:
    """Several choices of one request seen as one result by metrics, spans and logs."""

    usage: Usage
    timings: Timings
    finish_reason: str | None
    tokens_seen: int = 0


def combine(results: list[Any]) -> Any:
    if len(results) == 1:
        return results[0]
    usages = [r.usage or Usage(0, 0) for r in results]
    return Combined(
        usage=Usage(usages[0].prompt_tokens, sum(u.completion_tokens for u in usages)),
        timings=results[0].timings,
        finish_reason=results[0].finish_reason,
        tokens_seen=sum(getattr(r, "tokens_seen", 0) for r in results),
    )


def run_completions(requests: list[GenerationRequest], endpoint: str) -> list[Completion]:
    """Whole generations (one per choice) inside one slot; all submitted before any is read."""
    llm = services()
    track = RequestTrack(llm, endpoint, requests[0], http_request.environ)
    waited = _take_slot(llm, track)
    model = None
    try:
        model = llm.pool.acquire(requests[0].model)
        if requests[0].raw:
            results = [complete(model, request) for request in requests]
        else:
            streams = [open_stream(model, r, prime=i == 0) for i, r in enumerate(requests)]
            try:
                results = [collect(stream) for stream in streams]
            finally:
                for stream in streams:
                    stream.close()
    except BaseException as error:
        track.finish(error=error)
        raise
    finally:
        if model is not None:
            llm.pool.release(model)
        llm.limiter.release()
    for result in results:
        result.timings.queue_seconds = waited
    timings = results[0].timings
    if results[0].usage.completion_tokens:
        track.first_token(seconds_ago=timings.total_seconds - timings.time_to_first_token_seconds)
    track.finish(combine(results))
    return results


def run_completion(request: GenerationRequest, endpoint: str) -> Completion:
    return run_completions([request], endpoint)[0]


def completion_fields(result: Completion) -> dict:
    usage = result.usage
    return {
        "model": result.model,
        "finish_reason": result.finish_reason,
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        },
        "timings": asdict(result.timings),
    }


def stream_response(requests: list[GenerationRequest], encoder: StreamEncoder, endpoint: str) -> Response:
    """Submit, wait for the first token, then answer `text/event-stream` through `encoder`.

    Choices (one stream each) are sent one after the other. The slot is held until the response
    ends; a disconnect closes the response, which cancels the generations in the engine and frees
    the slot.
    """
    llm = services()
    track = RequestTrack(llm, endpoint, requests[0], http_request.environ)
    waited = _take_slot(llm, track)
    streams: list[Stream] = []
    model = None
    try:
        model = llm.pool.acquire(requests[0].model)
        for i, request in enumerate(requests):
            streams.append(open_stream(model, request, prime=i == 0))
    except BaseException as error:
        for stream in streams:
            stream.close()
        if model is not None:
            llm.pool.release(model)
        llm.limiter.release()
        track.finish(error=error)
        raise
    for stream in streams:
        stream.timings.queue_seconds = waited
    track.first_token()
    released = False

    def cleanup() -> None:
        nonlocal released
        for stream in streams:
            stream.close()
        track.finish(combine(streams), GeneratorExit())  # no-op when the stream already finished
        if not released:
            released = True
            llm.pool.release(model)
            llm.limiter.release()

    def events() -> Iterator[str]:
        try:
            opening = encoder.begin(len(streams))
            if opening:  # never an empty write: in chunked encoding it would end the response
                yield opening
            for index, stream in enumerate(streams):
                for batch in stream.batches():
                    frames = "".join(encoder.chunk(index, chunk) for chunk in batch)
                    if frames:  # tokens that arrived together go out in one write
                        yield frames
            track.finish(combine(streams))
            yield encoder.end(streams)
        except ApiError as error:
            logger.warning("stream failed after it began: %s", error.message)
            track.finish(combine(streams), error)
            yield encoder.error(error)
        finally:
            cleanup()

    response = Response(events(), mimetype="text/event-stream", headers=sse.STREAM_HEADERS)
    response.call_on_close(cleanup)
    return response


class NativeEncoder:
    """The native events: `token` per text delta, then `done` (or `error`)."""

    def __init__(self, final: Callable[[Stream, str], dict]) -> None:
        self._final = final
        self._parts: list[str] = []

    def begin(self, count: int) -> str:
        return ""

    def chunk(self, index: int, chunk: Chunk) -> str:
        if not chunk.text:
            return ""
        self._parts.append(chunk.text)
        return sse.token_frame(chunk.text)

    def end(self, streams: list[Stream]) -> str:
        return sse.frame("done", self._final(streams[0], "".join(self._parts)))

    def error(self, error: ApiError) -> str:
        return sse.frame("error", envelope(error.status, error.code, error.message, error.details))


def stream_summary(stream: Stream) -> dict:
    usage = stream.usage
    return {
        "model": stream.request.model,
        "finish_reason": stream.finish_reason,
        "usage": {
            "prompt_tokens": usage.prompt_tokens if usage else 0,
            "completion_tokens": usage.completion_tokens if usage else 0,
            "total_tokens": usage.total_tokens if usage else 0,
        },
        "timings": asdict(stream.timings),
    }
