"""OpenAI Responses API output: the `response` object and its stream of typed events.

One `ResponseWriter` serves both forms: a whole answer is built by the same calls a stream makes
(`text`, `call`, `finish`), so the object in `response.completed` is the one a non-streaming
request gets.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from app.api import sse
from app.api.turn_writer import TurnWriter
from app.engine import ToolCall, Usage
from app.errors import ApiError

logger = logging.getLogger(__name__)

# How an engine finish becomes a response's status and incomplete reason.
INCOMPLETE_REASONS = {"length": "max_output_tokens", "timeout": "timeout"}


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def echoed_tool(tool: dict) -> dict:
    """A function tool as the response object lists it: every field of OpenAI's FunctionTool."""
    if tool.get("type") != "function":
        return tool
    return {
        "type": "function",
        "name": tool.get("name"),
        "description": tool.get("description"),
        "parameters": tool.get("parameters"),
        "strict": tool.get("strict"),
    }


def usage_object(usage: Usage | None) -> dict:
    usage = usage or Usage(0, 0)
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


class ResponseWriter(TurnWriter):
    """One response: its output items as they form, and the events that tell them."""

    def __init__(self, body: dict, model: str, forced: bool) -> None:
        super().__init__(forced)
        self.base: dict[str, Any] = {
            "id": _id("resp"),
            "object": "response",
            "created_at": int(time.time()),
            "model": model,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "temperature": body.get("temperature"),
            "top_p": body.get("top_p"),
            "text": body.get("text") or {"format": {"type": "text"}},
            "tools": [echoed_tool(tool) for tool in body.get("tools") or []],
            "tool_choice": body.get("tool_choice") or "auto",
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": None,
            "store": False,
            "background": False,
            "truncation": "disabled",
            "metadata": body.get("metadata") or {},
            "user": body.get("user"),
            "error": None,
            "incomplete_details": None,
            "completed_at": None,
            "presence_penalty": body.get("presence_penalty") or 0.0,
            "frequency_penalty": body.get("frequency_penalty") or 0.0,
            "top_logprobs": body.get("top_logprobs") or 0,
            "reasoning": None,  # no reasoning model here
            "max_tool_calls": body.get("max_tool_calls"),
            "service_tier": "default",
            "safety_identifier": body.get("safety_identifier"),
            "prompt_cache_key": body.get("prompt_cache_key"),
        }
        self.output: list[dict] = []
        self._message: dict | None = None  # the message item being written
        self._text: list[str] = []
        self._sequence = 0
        self.last: dict | None = None  # the finished response object
        self.on_done: Callable[[dict], None] | None = None  # told the final object (to store it)

    # -- events ---------------------------------------------------------------------------------
    def _event(self, kind: str, **fields: Any) -> str:
        data = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return sse.frame(kind, data)

    def response(self, status: str, usage: dict | None = None) -> dict:
        return {**self.base, "status": status, "output": self.output, "usage": usage}

    def begin(self, count: int = 1) -> str:
        snapshot = self.response("in_progress")
        return self._event("response.created", response=snapshot) + self._event(
            "response.in_progress", response=snapshot
        )

    def text(self, delta: str) -> str:
        frames = ""
        if self._message is None:
            self._message = {
                "id": _id("msg"),
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            self.output.append(self._message)
            frames += self._event(
                "response.output_item.added", output_index=len(self.output) - 1, item=self._message
            )
            frames += self._event(
                "response.content_part.added",
                item_id=self._message["id"],
                output_index=len(self.output) - 1,
                content_index=0,
                part={"type": "output_text", "text": "", "annotations": []},
            )
        self._text.append(delta)
        return frames + self._event(
            "response.output_text.delta",
            item_id=self._message["id"],
            output_index=self.output.index(self._message),
            content_index=0,
            delta=delta,
            logprobs=[],
        )

    def _close_message(self, status: str) -> str:
        message, self._message = self._message, None
        if message is None:
            return ""
        text = "".join(self._text)
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        message.update(status=status, content=[part])
        where = {"item_id": message["id"], "output_index": self.output.index(message), "content_index": 0}
        return (
            self._event("response.output_text.done", **where, text=text, logprobs=[])
            + self._event("response.content_part.done", **where, part=part)
            + self._event("response.output_item.done", output_index=where["output_index"], item=message)
        )

    def call(self, call: ToolCall, finish_reason: str | None = None) -> str:
        status = "incomplete" if finish_reason in INCOMPLETE_REASONS else "completed"
        frames = self._close_message("completed")
        item = {
            "id": _id("fc"),
            "type": "function_call",
            "status": "in_progress",
            "call_id": call.id,
            "name": call.name,
            "arguments": "",
        }
        self.output.append(item)
        index = len(self.output) - 1
        frames += self._event("response.output_item.added", output_index=index, item=dict(item))
        frames += self._event(
            "response.function_call_arguments.delta",
            item_id=item["id"],
            output_index=index,
            delta=call.arguments,
        )
        item.update(arguments=call.arguments, status=status)
        frames += self._event(
            "response.function_call_arguments.done",
            item_id=item["id"],
            output_index=index,
            name=call.name,
            arguments=call.arguments,
        )
        return frames + self._event("response.output_item.done", output_index=index, item=item)

    def finish(self, finish_reason: str | None, usage: Usage | None) -> str:
        """Close the open item and end with `response.completed` (or `response.incomplete`)."""
        reason = INCOMPLETE_REASONS.get(finish_reason or "stop")
        frames = self._close_message("incomplete" if reason else "completed")
        if reason:
            self.base["incomplete_details"] = {"reason": reason}
        status = "incomplete" if reason else "completed"
        if status == "completed":
            self.base["completed_at"] = int(time.time())
        self.last = self.response(status, usage_object(usage))
        if self.on_done is not None:
            self.on_done(self.last)
        return frames + self._event(f"response.{status}", response=self.last)

    def error(self, error: ApiError) -> str:
        failed = self._event(
            "error", code=error.code, message=error.message, param=(error.details or {}).get("param")
        )
        self.base["error"] = {"code": error.code, "message": error.message}
        self.last = self.response("failed")
        if self.on_done is not None:
            try:
                self.on_done(self.last)
            except ApiError as again:  # storing may be what failed: the client is told all the same
                logger.warning("a failed response was not stored: %s", again.message)
        return failed + self._event("response.failed", response=self.last)
