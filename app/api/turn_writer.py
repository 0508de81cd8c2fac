"""What the Responses and Anthropic writers share: one assistant turn written as events, from a
stream's chunks or from a whole result, through the same `text`, `call` and `finish` steps."""

from __future__ import annotations

from app.api.functions import calls_of
from app.engine import Chunk, Stream, ToolCall, Usage


class TurnWriter:
    """A subclass writes the events: `begin`, `text(delta)`, `call(call, finish_reason)` and
    `finish(finish_reason, usage)`, each returning SSE text."""

    def __init__(self, forced: bool) -> None:
        self.forced = forced  # a grammar forced one call: the text is the call
        self._called = False

    def begin(self, count: int = 1) -> str:
        raise NotImplementedError

    def text(self, delta: str) -> str:
        raise NotImplementedError

    def call(self, call: ToolCall, finish_reason: str | None = None) -> str:
        raise NotImplementedError

    def finish(self, finish_reason: str | None, usage: Usage | None) -> str:
        raise NotImplementedError

    # -- the encoder protocol of inference.stream_response ----------------------------------------
    def chunk(self, index: int, chunk: Chunk) -> str:
        frames = self.text(chunk.text) if chunk.text else ""
        self._called = self._called or bool(chunk.tool_calls)
        return frames + "".join(self.call(call) for call in chunk.tool_calls)

    def end(self, streams: list[Stream]) -> str:
        """A turn that made calls finishes as `tool_calls`, unless the length or the deadline cut it."""
        stream, reason = streams[0], streams[0].finish_reason
        if self._called and reason not in ("length", "timeout"):
            reason = "tool_calls"
        return self.finish(reason, stream.usage)

    # -- a whole result ---------------------------------------------------------------------------
    def whole(self, text: str, calls: tuple[ToolCall, ...], finish_reason: str, usage: Usage) -> str:
        """Write a finished generation as the stream would have (a forced call's text is the call);
        returns the events, and leaves the finished object on the writer."""
        found = calls_of(text, calls, finish_reason, self.forced)
        frames = self.begin()
        if text and not found.calls:
            frames += self.text(text)
        frames += "".join(self.call(call, found.finish_reason) for call in found.calls)
        return frames + self.finish(found.finish_reason, usage)
