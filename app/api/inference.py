"""What generate and chat views share: defaults and limits, the slot, the engine call, the stream.

Every generation is tracked once (metrics, span, log line) whatever its outcome.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

from flask import Response, current_app
from flask import request as http_request

from app.api import sse
from app.engine import Completion, GenerationRequest, Grammar, Sampling, Stream, complete, open_stream
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
        waited = llm.limiter.acquire()
    except ApiError as error:
        track.finish(error=error)
        raise
    track.slot_granted(waited)
    return waited


def run_completion(request: GenerationRequest, endpoint: str) -> Completion:
    """A whole generation inside one slot."""
    llm = services()
    track = RequestTrack(llm, endpoint, request, http_request.environ)
    waited = _take_slot(llm, track)
    try:
        model = llm.pool.acquire(request.model)
        result = complete(model, request)
    except BaseException as error:
        track.finish(error=error)
        raise
    finally:
        llm.limiter.release()
    result.timings.queue_seconds = waited
    timings = result.timings
    if result.usage.completion_tokens:
        track.first_token(seconds_ago=timings.total_seconds - timings.time_to_first_token_seconds)
    track.finish(result)
    return result


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


def stream_response(
    request: GenerationRequest, final: Callable[[Stream, str], dict], endpoint: str
) -> Response:
    """Submit, wait for the first token, then answer `text/event-stream`.

    Events: `token` `{"delta": str}` per text delta; then `done` with `final(stream, text)`; or,
    if generation fails after the first byte, one `error` event with the error envelope.
    The slot is held until the stream ends; a disconnect closes the response, which cancels the
    generation in the engine and frees the slot.
    """
    llm = services()
    track = RequestTrack(llm, endpoint, request, http_request.environ)
    waited = _take_slot(llm, track)
    try:
        model = llm.pool.acquire(request.model)
        stream = open_stream(model, request)
    except BaseException as error:
        llm.limiter.release()
        track.finish(error=error)
        raise
    stream.timings.queue_seconds = waited
    track.first_token()
    released = False

    def cleanup() -> None:
        nonlocal released
        stream.close()
        track.finish(stream, GeneratorExit())  # no-op when the stream already finished
        if not released:
            released = True
            llm.limiter.release()

    def events() -> Iterator[str]:
        parts: list[str] = []
        try:
            for batch in stream.batches():
                frames = []
                for chunk in batch:
                    if chunk.text:
                        parts.append(chunk.text)
                        frames.append(sse.token_frame(chunk.text))
                if frames:  # tokens that arrived together go out in one write
                    yield "".join(frames)
            track.finish(stream)
            yield sse.frame("done", final(stream, "".join(parts)))
        except ApiError as error:
            logger.warning("stream failed after it began: %s", error.message)
            track.finish(stream, error)
            yield sse.frame("error", envelope(error.status, error.code, error.message, error.details))
        finally:
            cleanup()

    response = Response(events(), mimetype="text/event-stream", headers=sse.STREAM_HEADERS)
    response.call_on_close(cleanup)
    return response


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
