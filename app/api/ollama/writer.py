"""Ollama's answer objects and its NDJSON stream: a line per delta (`message` for chat, `response`
for generate), then a last line with `done: true`, `done_reason`, the counts and the durations in
nanoseconds; an error after the first line is one `{"error": ...}` line."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from app.api.functions import arguments_object
from app.engine import Chunk, Completion, Stream, Timings, ToolCall, Usage
from app.errors import ApiError

MIMETYPE = "application/x-ndjson"
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def now() -> str:
    """Ollama's `created_at`: RFC 3339, UTC."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def line(data: dict) -> str:
    return _ENCODER.encode(data) + "\n"


def tool_calls(calls: tuple[ToolCall, ...]) -> list[dict]:
    """Calls in Ollama's shape: arguments as an object."""
    return [{"function": {"name": c.name, "arguments": arguments_object(c.arguments)}} for c in calls]


def done_fields(finish_reason: str | None, usage: Usage | None, timings: Timings) -> dict[str, Any]:
    """The last object's fields: why it ended, the token counts and the durations (ns). Our timings
    all count from the request's arrival: the prompt's evaluation is the first token less the queue,
    the evaluation of the answer what follows the first token."""
    usage = usage or Usage(0, 0)
    queue, first, total = timings.queue_seconds, timings.time_to_first_token_seconds, timings.total_seconds
    return {
        "done": True,
        "done_reason": "length" if finish_reason == "length" else "stop",
        "total_duration": int(total * 1e9),
        "load_duration": 0,
        "prompt_eval_count": usage.prompt_tokens,
        "prompt_eval_duration": int(max(0.0, first - queue) * 1e9),
        "eval_count": usage.completion_tokens,
        "eval_duration": int(max(0.0, total - first) * 1e9),
    }


def whole(model: str, result: Completion, chat: bool) -> dict:
    """A `stream: false` answer."""
    body: dict[str, Any] = {"model": model, "created_at": now()}
    if chat:
        message: dict[str, Any] = {"role": "assistant", "content": result.text}
        if result.tool_calls:
            message["tool_calls"] = tool_calls(result.tool_calls)
        body["message"] = message
    else:
        body["response"] = result.text
    return {**body, **done_fields(result.finish_reason, result.usage, result.timings)}


class NdjsonEncoder:
    """The stream encoder (app.api.inference.StreamEncoder) of Ollama's chat and generate."""

    mimetype = MIMETYPE

    def __init__(self, model: str, chat: bool) -> None:
        self.model, self.chat = model, chat
        self._started = time.perf_counter()

    def begin(self, count: int) -> str:
        return ""

    def _delta(self, text: str, calls: tuple[ToolCall, ...] = ()) -> dict:
        body: dict[str, Any] = {"model": self.model, "created_at": now()}
        if self.chat:
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if calls:
                message["tool_calls"] = tool_calls(calls)
            body["message"] = message
        else:
            body["response"] = text
        return body

    def chunk(self, index: int, chunk: Chunk) -> str:
        if not chunk.text and not chunk.tool_calls:
            return ""
        return line({**self._delta(chunk.text, chunk.tool_calls), "done": False})

    def end(self, streams: list[Stream]) -> str:
        stream = streams[0]
        return line({**self._delta(""), **done_fields(stream.finish_reason, stream.usage, stream.timings)})

    def error(self, error: ApiError) -> str:
        return line({"error": error.message})
