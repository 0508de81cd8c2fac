"""What generate and chat views share: defaults and limits, the slot, the engine call, the stream.

Every generation is tracked once (metrics, span, log line) whatever its outcome.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any, Protocol

from flask import Response, current_app, g, stream_with_context
from flask import request as http_request

from app.api import sse
from app.api.session import GenerationSession
from app.engine import Chunk, Completion, GenerationRequest, Grammar, LoadedModel, Sampling, Stream
from app.errors import ApiError, ModelNotAllowedError, UnprocessableError, envelope

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
    key = g.get("api_key")
    limit, limit_name = settings.max_tokens_limit, "LLM_MAX_TOKENS_LIMIT"
    if key is not None and key.max_tokens_limit and key.max_tokens_limit < limit:
        limit, limit_name = key.max_tokens_limit, f"max_tokens_limit of API key '{key.name}'"
    max_tokens = body.get("max_tokens") or min(settings.default_max_tokens, limit)
    if max_tokens > limit:
        raise UnprocessableError(
            f"max_tokens: {max_tokens} is above the limit of {limit} ({limit_name})",
            details={"fields": {"max_tokens": [f"Must be at most {limit}."]}},
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
        ignore_eos=bool(body.get("ignore_eos")),
        seed=body.get("seed"),
        logprobs=logprobs,
        top_logprobs=top_logprobs,
    )
    model = requested_model(body.get("model"), llm.pool.default_model)
    return GenerationRequest(model=model, sampling=sampling, grammar=grammar, tools=tools, **content)


def requested_model(name: str | None, default: Callable[[], str]) -> str:
    """The model a request names, else its API key's first, else `default()`; 403 when the key may
    not use it."""
    key = g.get("api_key")
    model = name or (key.models[0] if key is not None and key.models else default())
    check_model(model)
    return model


def first_embedding_model() -> str:
    """The model /api/embed uses when neither the request nor the key names one."""
    pool = services().pool
    found = pool.embedding_models()
    return found[0] if found else pool.default_model()


def check_model(model: str) -> None:
    """403 when the request's API key may not use `model` (by id or catalog alias)."""
    key = g.get("api_key")
    if key is None or not key.models:
        return
    if services().settings.canonical(model) not in key.models:
        raise ModelNotAllowedError(
            f"API key '{key.name}' may not use model '{model}'; it may use: {', '.join(key.models)}",
            details={"model": model, "allowed": list(key.models)},
        )


@contextmanager
def leased(name: str | None) -> Iterator[LoadedModel]:
    """A loaded model for work that needs no slot (tokens), held until the block ends."""
    pool = services().pool
    model = pool.acquire(requested_model(name, pool.default_model))
    try:
        yield model
    finally:
        pool.release(model)


def visible_models(models: list[dict]) -> list[dict]:
    """The listing a request's API key may see: its models only, when it has a list."""
    key = g.get("api_key")
    if key is None or not key.models:
        return models
    return [m for m in models if m["id"] in key.models]


def native_grammar(body: dict) -> Grammar | None:
    """The native API's `format` (\"json\" or a JSON schema) or `regex`, as an engine grammar."""
    output_format, regex = body.get("format"), body.get("regex")
    if output_format is not None and regex is not None:
        raise UnprocessableError(
            "format: give either format or regex, not both",
            details={"fields": {"format": ["Not allowed together with regex."]}},
        )
    if regex is not None:
        return Grammar("regex", regex, param="regex")
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


class StreamEncoder(Protocol):
    """Turns a stream's life into SSE text: the native events, or OpenAI's chunks."""

    def begin(self, count: int) -> str: ...

    def chunk(self, index: int, chunk: Chunk) -> str: ...

    def end(self, streams: list[Stream]) -> str: ...

    def error(self, error: ApiError) -> str: ...


def session(requests: list[GenerationRequest], endpoint: str, body: dict) -> GenerationSession:
    """A session for `requests`, its deadline from the body's `timeout` or the server default."""
    llm = services()
    timeout = body.get("timeout") or llm.settings.request_timeout_seconds or None
    return GenerationSession(llm, endpoint, requests, http_request.environ, timeout, g.get("api_key"))


def run_completions(requests: list[GenerationRequest], endpoint: str, body: dict) -> list[Completion]:
    """Whole generations (one per choice) inside one session."""
    with session(requests, endpoint, body).open() as generation:
        return generation.complete()


def run_completion(request: GenerationRequest, endpoint: str, body: dict) -> Completion:
    return run_completions([request], endpoint, body)[0]


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
    requests: list[GenerationRequest], encoder: StreamEncoder, endpoint: str, body: dict
) -> Response:
    """Open a session (model, slot, submission, first token: failures still get their status), then
    answer `text/event-stream` through `encoder`, choices one after the other. The session owns
    everything: closing the response (the end, or a client that left) closes it."""
    generation = session(requests, endpoint, body).open(streaming=True)

    def events() -> Iterator[str]:
        try:
            opening = encoder.begin(len(requests))
            if opening:  # never an empty write: in chunked encoding it would end the response
                yield opening
            for index, batch in generation.batches():
                frames = "".join(encoder.chunk(index, chunk) for chunk in batch)
                if frames:  # tokens that arrived together go out in one write
                    yield frames
            yield encoder.end(generation.streams)
        except ApiError as error:
            logger.warning("stream ended early: %s", error.message)
            yield encoder.error(error)
        finally:
            generation.close()  # the outcome is the session's to tell (a closed response: cancelled)

    mimetype = getattr(encoder, "mimetype", "text/event-stream")  # NDJSON for Ollama's API
    response = Response(stream_with_context(events()), mimetype=mimetype, headers=sse.STREAM_HEADERS)
    response.call_on_close(generation.close)
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
