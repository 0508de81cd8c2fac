"""Anthropic Messages API output: the `message` object and its stream of events.

One `MessageWriter` serves both forms, as the Responses writer does: a whole answer is written by the
same calls a stream makes, so the message a non-streaming request gets is the one the stream built.
"""

from __future__ import annotations

import uuid
from typing import Any

from app.api import sse
from app.api.functions import arguments_object
from app.api.turn_writer import TurnWriter
from app.engine import ToolCall, Usage
from app.error_shapes import anthropic_envelope
from app.errors import ApiError

# The engine's finish as Anthropic's stop_reason ("stop" is end_turn or stop_sequence, below).
STOP_REASONS = {"length": "max_tokens", "tool_calls": "tool_use", "timeout": "timeout"}


def usage_object(input_tokens: int, output_tokens: int) -> dict:
    """Anthropic's usage with every field its spec requires; no prompt caching is billed here."""
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0},
        "server_tool_use": {"web_fetch_requests": 0, "web_search_requests": 0},
        "output_tokens_details": None,
        "inference_geo": None,
        "service_tier": "standard",
    }


def stop_reason(finish_reason: str | None, stop_sequences: list[str]) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence). The engine reports a stop string and the end-of-turn token both
    as "stop" and does not say which string matched: with stop sequences given, a "stop" is reported
    as `stop_sequence`, naming the string when only one was given."""
    reason = finish_reason or "stop"
    if reason in STOP_REASONS:
        return STOP_REASONS[reason], None
    if stop_sequences:
        return "stop_sequence", stop_sequences[0] if len(stop_sequences) == 1 else None
    return "end_turn", None


class MessageWriter(TurnWriter):
    """One assistant message: its content blocks as they form, and the events that tell them."""

    def __init__(self, model: str, forced: bool, stop_sequences: list[str]) -> None:
        super().__init__(forced)
        self.stop_sequences = stop_sequences
        self.message: dict[str, Any] = {
            "id": f"msg_{uuid.uuid4().hex}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "stop_details": None,
            "container": None,
            "usage": usage_object(0, 0),
        }
        self._text: dict | None = None  # the text block being written

    @staticmethod
    def _event(kind: str, **fields: Any) -> str:
        return sse.frame(kind, {"type": kind, **fields})

    def begin(self, count: int = 1) -> str:
        return self._event("message_start", message={**self.message, "content": []})

    def text(self, delta: str) -> str:
        frames = ""
        if self._text is None:
            self._text = {"type": "text", "text": "", "citations": None}
            self.message["content"].append(self._text)
            frames += self._event(
                "content_block_start",
                index=self._index(self._text),
                content_block={"type": "text", "text": "", "citations": None},
            )
        self._text["text"] += delta
        return frames + self._event(
            "content_block_delta", index=self._index(self._text), delta={"type": "text_delta", "text": delta}
        )

    def _index(self, block: dict) -> int:
        return next(i for i, b in enumerate(self.message["content"]) if b is block)

    def _close_text(self) -> str:
        block, self._text = self._text, None
        return self._event("content_block_stop", index=self._index(block)) if block is not None else ""

    def call(self, call: ToolCall, finish_reason: str | None = None) -> str:
        frames = self._close_text()
        block = {
            "type": "tool_use",
            "id": f"toolu_{uuid.uuid4().hex[:24]}",
            "name": call.name,
            "input": {},
            "caller": {"type": "direct"},
        }
        self.message["content"].append(block)
        index = len(self.message["content"]) - 1
        frames += self._event("content_block_start", index=index, content_block=dict(block))
        frames += self._event(
            "content_block_delta",
            index=index,
            delta={"type": "input_json_delta", "partial_json": call.arguments},
        )
        block["input"] = arguments_object(call.arguments)
        return frames + self._event("content_block_stop", index=index)

    def finish(self, finish_reason: str | None, usage: Usage | None) -> str:
        usage = usage or Usage(0, 0)
        reason, sequence = stop_reason(finish_reason, self.stop_sequences)
        counts = {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens}
        self.message.update(
            stop_reason=reason,
            stop_sequence=sequence,
            usage=usage_object(usage.prompt_tokens, usage.completion_tokens),
        )
        stop = {"stop_reason": reason, "stop_sequence": sequence}
        return (
            self._close_text()
            + self._event("message_delta", delta=stop, usage=counts)
            + self._event("message_stop")
        )

    def error(self, error: ApiError) -> str:
        body = anthropic_envelope(error.status, error.code, error.message, error.details)
        return sse.frame("error", body)
