"""OpenAI response objects for /v1: choices, logprobs, tool calls, usage, and streamed chunks."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

from flask import Response

from app.api import sse
from app.api.functions import calls_of
from app.engine import Chunk, Completion, Stream, TokenLogprob, ToolCall
from app.error_shapes import openai_envelope
from app.errors import ApiError
from app.observability.track import combine


def logprobs_object(entries: tuple[TokenLogprob, ...]) -> dict:
    return {
        "content": [
            {
                "token": e.token,
                "logprob": e.logprob,
                "bytes": list(e.token.encode()),
                "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in e.top],
            }
            for e in entries
        ]
    }


def tool_calls_object(calls: tuple[ToolCall, ...], with_index: bool = False) -> list[dict]:
    out = []
    for i, call in enumerate(calls):
        entry = {
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": call.arguments},
        }
        out.append({"index": i, **entry} if with_index else entry)
    return out


def usage_object(results: list[Any]) -> dict:
    combined = combine(results)
    usage = combined.usage
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def response_id(kind: str) -> str:
    return f"{'chatcmpl' if kind.startswith('chat.') else 'cmpl'}-{uuid.uuid4().hex}"


def response_object(kind: str, model: str, choices: list[dict], results: list[Any]) -> dict:
    """A whole `chat.completion` or `text_completion` object."""
    return {
        "id": response_id(kind),
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": usage_object(results),
    }


def chat_choice(index: int, result: Completion, forced: bool, logprobs: bool) -> dict:
    found = calls_of(result.text, result.tool_calls, result.finish_reason, forced)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": None if found.calls else result.text,
        "refusal": None,
        "annotations": [],
    }
    if found.calls:
        message["tool_calls"] = tool_calls_object(found.calls)
    return {
        "index": index,
        "message": message,
        "logprobs": logprobs_object(result.logprobs) if logprobs else None,
        "finish_reason": found.finish_reason,
    }


class ChunkWriter:
    """OpenAI `data:` chunks of one response, ending with `data: [DONE]`."""

    def __init__(self, kind: str, model: str, include_usage: bool) -> None:
        self.base = {
            "id": response_id(kind),
            "object": kind,
            "created": int(time.time()),
            "model": model,
        }
        self.include_usage = include_usage

    def choice(self, index: int, body: dict, finish_reason: str | None = None) -> str:
        chunk = {**self.base, "choices": [{"index": index, **body, "finish_reason": finish_reason}]}
        if self.include_usage:
            chunk["usage"] = None
        return sse.data_frame(chunk)

    def close(self, results: list[Any]) -> str:
        usage = (
            sse.data_frame({**self.base, "choices": [], "usage": usage_object(results)})
            if self.include_usage
            else ""
        )
        return usage + sse.DONE

    @staticmethod
    def error(error: ApiError) -> str:
        return (
            sse.data_frame(openai_envelope(error.status, error.code, error.message, error.details)) + sse.DONE
        )


class ChatEncoder:
    """Engine chunks as `chat.completion.chunk` objects."""

    def __init__(self, model: str, include_usage: bool, logprobs: bool) -> None:
        self.writer = ChunkWriter("chat.completion.chunk", model, include_usage)
        self.logprobs = logprobs

    def begin(self, count: int) -> str:
        return "".join(
            self.writer.choice(i, {"delta": {"role": "assistant", "content": ""}}) for i in range(count)
        )

    def chunk(self, index: int, chunk: Chunk) -> str:
        delta: dict[str, Any] = {}
        if chunk.text:
            delta["content"] = chunk.text
        if chunk.tool_calls:
            delta["tool_calls"] = tool_calls_object(chunk.tool_calls, with_index=True)
        frames = ""
        if delta:
            logprobs = logprobs_object(chunk.logprobs) if self.logprobs and chunk.logprobs else None
            frames += self.writer.choice(index, {"delta": delta, "logprobs": logprobs})
        if chunk.finish_reason is not None:
            reason = "tool_calls" if chunk.tool_calls else chunk.finish_reason
            frames += self.writer.choice(index, {"delta": {}}, reason)
        return frames

    def end(self, streams: list[Stream]) -> str:
        return self.writer.close(streams)

    def error(self, error: ApiError) -> str:
        return self.writer.error(error)


def replay(frames: list[str]) -> Response:
    """A finished result sent in the streaming format (for generations the engine cannot stream)."""

    def generate() -> Iterator[str]:
        yield from frames

    return Response(generate(), mimetype="text/event-stream", headers=sse.STREAM_HEADERS)
