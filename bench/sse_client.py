"""The benchmarks' HTTP client: JSON requests, and SSE streams timed frame by frame (time to first token,
decode speed, latency). One reader for our native events, our OpenAI chunks and llama-server's chunks."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from app.api import sse
from bench.processes import HOST

REQUEST_TIMEOUT_SECONDS = 300.0
HEADERS = {"Content-Type": "application/json", "Accept": "text/event-stream, application/json"}


def get(port: int, path: str, timeout: float = 10) -> tuple[int, bytes]:
    """GET on loopback: (status, body)."""
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@contextmanager
def posted(
    port: int, path: str, body: dict[str, Any], timeout: float = REQUEST_TIMEOUT_SECONDS
) -> Iterator[tuple[float, http.client.HTTPResponse]]:
    """POST `body` as JSON on a new connection: (when the request was sent, the response). The
    connection is closed on leaving, mid-stream too: that is a client's disconnect."""
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.connect()
        sent = time.perf_counter()
        connection.request("POST", path, body=json.dumps(body).encode(), headers=HEADERS)
        yield sent, connection.getresponse()
    finally:
        connection.close()


def expect_ok(response: http.client.HTTPResponse) -> None:
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {response.read(2000).decode(errors='replace')}")


def post_json(
    port: int, path: str, body: dict[str, Any], timeout: float = REQUEST_TIMEOUT_SECONDS
) -> tuple[float, dict[str, Any]]:
    """A non-streaming request that must succeed: (seconds from sending to the whole answer, answer)."""
    with posted(port, path, body, timeout) as (sent, response):
        expect_ok(response)
        answer = json.loads(response.read())
        return time.perf_counter() - sent, answer


def frames(response: http.client.HTTPResponse) -> Iterator[tuple[str, Any]]:
    """(event, data) per SSE frame as soon as its blank line arrives, via the project's SSE parser;
    OpenAI's closing `data: [DONE]` ends them."""
    lines: list[str] = []
    while line := response.readline():
        text = line.decode("utf-8").rstrip("\r\n")
        if text:
            lines.append(text)
        elif lines:
            if lines[-1].removeprefix("data:").strip() == "[DONE]":
                return
            if any(entry.startswith("data:") for entry in lines):  # not a comment-only frame
                yield sse.parse("\n".join(lines))[0]
            lines = []


def decode_rate(tokens: int, first: float, last: float) -> float:
    """Tokens per second after the first one: (tokens - 1) / (t_last - t_first)."""
    return (tokens - 1) / (last - first) if tokens > 1 and last > first else 0.0


@dataclass(frozen=True)
class Stream:
    """One streamed generation, timed by the client (perf_counter seconds)."""

    sent: float  # the request was sent (connection already open)
    first: float  # first frame with text
    last: float  # last frame with text
    ended: float  # the stream's end (`done`, `[DONE]` or the connection closed)
    completion_tokens: int
    prompt_tokens: int
    text: str
    done: dict[str, Any] | None = None  # our native `done` event: usage, the server's own timings

    @property
    def ttft_ms(self) -> float:
        return (self.first - self.sent) * 1e3

    @property
    def decode_tok_s(self) -> float:
        return decode_rate(self.completion_tokens, self.first, self.last)

    @property
    def latency_s(self) -> float:
        return self.ended - self.sent


def text_of(event: str, data: Any) -> str:
    """The generated text a frame carries: a native `token` event, or an OpenAI chunk's deltas."""
    if event == "token":
        return data["delta"]
    if event == "message":
        return "".join(
            (choice.get("delta") or {}).get("content") or "" for choice in data.get("choices") or ()
        )
    raise RuntimeError(f"unexpected {event!r} event: {data}")


def usage_of(data: Any) -> tuple[int, int] | None:
    """(prompt, completion) tokens from a usage chunk or `done` event, or from llama.cpp's `timings`."""
    usage = data.get("usage")
    if usage:
        return usage["prompt_tokens"], usage["completion_tokens"]
    timings = data.get("timings")
    if timings and "predicted_n" in timings:
        return timings.get("prompt_n", 0), timings["predicted_n"]
    return None


def stream(port: int, path: str, body: dict[str, Any], timeout: float = REQUEST_TIMEOUT_SECONDS) -> Stream:
    """POST to a streaming endpoint and read it to its end: native (`token` ... `done`) or OpenAI chunks
    (with `stream_options.include_usage`, or llama.cpp's timings) until `[DONE]`."""
    parts: list[str] = []
    first = last = 0.0
    counts: tuple[int, int] | None = None
    done: dict[str, Any] | None = None
    with posted(port, path, body, timeout) as (sent, response):
        expect_ok(response)
        for event, data in frames(response):
            if event == "done":
                done, counts = data, usage_of(data)
                break
            if text := text_of(event, data):
                last = time.perf_counter()
                first = first or last
                parts.append(text)
            counts = usage_of(data) or counts
        ended = time.perf_counter()
    if counts is None or not first:
        raise RuntimeError(f"{path} on port {port}: the stream ended without usage or text")
    return Stream(sent, first, last, ended, counts[1], counts[0], "".join(parts), done)
