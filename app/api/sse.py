"""The one Server-Sent Events writer used by every stream."""

from __future__ import annotations

import json
from typing import Any

STREAM_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: pass each event through at once
}


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def frame(event: str, data: Any) -> str:
    """One SSE frame: `event: NAME` and a single-line JSON `data:` field."""
    return f"event: {event}\ndata: {_ENCODER.encode(data)}\n\n"


DONE = "data: [DONE]\n\n"


def data_frame(data: Any) -> str:
    """A frame with only a `data:` field (OpenAI's stream format)."""
    return f"data: {_ENCODER.encode(data)}\n\n"


def token_frame(text: str) -> str:
    """`frame("token", {"delta": text})`, built without a dict: it runs once per token."""
    return 'event: token\ndata: {"delta":' + _ENCODER.encode(text) + "}\n\n"


def parse(text: str) -> list[tuple[str, Any]]:
    """Frames back into (event, data) pairs; used by tests and the benchmark client."""
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        event, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                event = line[len("event:") :].strip()
            elif line.startswith("data:"):
                data.append(line[len("data:") :].lstrip())
        events.append((event, json.loads("\n".join(data))))
    return events
