"""The measured rounds of the comparison with llama.cpp: in each round one server does every measurement
(single requests, then N streams at once), then the other, the order alternating by round."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field, fields
from functools import partial
from typing import Any

from bench.concurrent import Burst, burst
from bench.cpu import QuietMachine
from bench.processes import MODEL, OURS, Server
from bench.prompts import long_messages, short_messages
from bench.sse_client import Stream, post_json, stream

CHAT_PATH = "/v1/chat/completions"
CONCURRENCY_LEVELS = (4, 8)
SETTLE_SECONDS = 0.5  # lets the engine threads of the side that just ran go idle
LONG_PROMPT_MAX_TOKENS = 4  # the long-prompt run measures first-token time only


@dataclass(frozen=True)
class Side:
    """One side of the comparison: the server for single requests and the one for each burst size."""

    kind: str
    single: Server
    bursts: dict[int, Server]

    @property
    def servers(self) -> list[Server]:
        return list({id(s): s for s in (self.single, *self.bursts.values())}.values())


def request_body(kind: str, messages: list[dict], max_tokens: int, streamed: bool) -> dict[str, Any]:
    """Greedy chat request. llama.cpp: ignore_eos and no prompt cache. Ours has neither field: the
    prompts make greedy decoding run past max_tokens, and each prompt is new (tagged) to the cache."""
    body: dict[str, Any] = {
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "stream": streamed,
    }
    if streamed:
        body["stream_options"] = {"include_usage": True}
    if kind == OURS:
        return {"model": MODEL, **body}
    return {**body, "n_predict": max_tokens, "ignore_eos": True, "cache_prompt": False}


def stream_chat(server: Server, messages: list[dict], max_tokens: int) -> Stream:
    """One streamed chat completion, timed by the client."""
    return stream(server.port, CHAT_PATH, request_body(server.kind, messages, max_tokens, streamed=True))


def complete_chat(server: Server, messages: list[dict], max_tokens: int) -> tuple[float, int, int]:
    """One non-streaming chat completion: (seconds, completion tokens, prompt tokens)."""
    body = request_body(server.kind, messages, max_tokens, streamed=False)
    seconds, answer = post_json(server.port, CHAT_PATH, body)
    return seconds, answer["usage"]["completion_tokens"], answer["usage"]["prompt_tokens"]


@dataclass
class SideRuns:
    """Everything measured for one server, over all rounds."""

    completion_tok_s: list[float] = field(default_factory=list)
    completion_tokens: list[int] = field(default_factory=list)
    decode_tok_s: list[float] = field(default_factory=list)
    decode_tokens: list[int] = field(default_factory=list)
    stream_latency_s: list[float] = field(default_factory=list)  # that single stream, sent -> end
    ttft_short_ms: list[float] = field(default_factory=list)
    ttft_long_ms: list[float] = field(default_factory=list)
    prompt_tokens: dict[str, list[int]] = field(default_factory=dict)
    # per burst size: aggregate_tok_s and longest_ttft_ms per round; ttft_ms, latency_s, tokens per stream
    concurrency: dict[int, dict[str, list[float]]] = field(default_factory=dict)
    outside_cpu_s: list[float] = field(default_factory=list)
    text_samples: dict[str, str] = field(default_factory=dict)

    def add_burst(self, count: int, done: Burst) -> None:
        level = self.concurrency.setdefault(count, {})
        level.setdefault("aggregate_tok_s", []).append(done.aggregate_tok_s)
        level.setdefault("longest_ttft_ms", []).append(max(done.ttft_ms))
        level.setdefault("ttft_ms", []).extend(done.ttft_ms)
        level.setdefault("latency_s", []).extend(done.latency_s)
        level.setdefault("tokens", []).extend(done.tokens)

    def absorb(self, other: SideRuns) -> None:
        """Add another round's figures to these."""
        for one in fields(self):
            mine = getattr(self, one.name)
            if isinstance(mine, list):
                mine.extend(getattr(other, one.name))
        for key, values in other.prompt_tokens.items():
            self.prompt_tokens.setdefault(key, []).extend(values)
        for count, level in other.concurrency.items():
            for name, values in level.items():
                self.concurrency.setdefault(count, {}).setdefault(name, []).extend(values)
        for key, text in other.text_samples.items():
            self.text_samples.setdefault(key, text)


def measure_side(side: Side, args: argparse.Namespace, tag: str) -> SideRuns:
    """One round of every measurement on one side."""
    runs, single = SideRuns(), side.single
    seconds, tokens, prompt = complete_chat(single, short_messages(f"{tag}-a"), args.max_tokens)
    runs.completion_tok_s.append(tokens / seconds)
    runs.completion_tokens.append(tokens)
    runs.prompt_tokens.setdefault("short", []).append(prompt)
    time.sleep(SETTLE_SECONDS)
    one = stream_chat(single, short_messages(f"{tag}-b"), args.max_tokens)
    runs.decode_tok_s.append(one.decode_tok_s)
    runs.decode_tokens.append(one.completion_tokens)
    runs.stream_latency_s.append(one.latency_s)
    runs.ttft_short_ms.append(one.ttft_ms)
    runs.text_samples.setdefault("short", one.text)
    time.sleep(SETTLE_SECONDS)
    one = stream_chat(single, long_messages(f"{tag}-c"), LONG_PROMPT_MAX_TOKENS)
    runs.ttft_long_ms.append(one.ttft_ms)
    runs.prompt_tokens.setdefault("long", []).append(one.prompt_tokens)
    for count, server in side.bursts.items():
        time.sleep(SETTLE_SECONDS)
        call = partial(burst_stream, server, f"{tag}-n{count}", args.concurrent_tokens)
        runs.add_burst(count, burst(count, call, f"{side.kind} x{count}"))
    time.sleep(SETTLE_SECONDS)
    return runs


def burst_stream(server: Server, tag: str, max_tokens: int, index: int) -> Stream:
    """Stream `index` of a burst: a short prompt of its own."""
    return stream_chat(server, short_messages(f"{tag}-c{index}"), max_tokens)


def warm_up(server: Server) -> None:
    """Two short streams and one long prompt: first-request costs stay out of the figures."""
    for index in range(2):
        stream_chat(server, short_messages(f"warm{index}"), 16)
    stream_chat(server, long_messages("warm"), LONG_PROMPT_MAX_TOKENS)
    time.sleep(SETTLE_SECONDS)


def describe_round(kind: str, runs: SideRuns) -> str:
    parts = [
        f"completion {runs.completion_tok_s[-1]:6.1f} tok/s ({runs.completion_tokens[-1]} tok)",
        f"decode {runs.decode_tok_s[-1]:6.1f} tok/s",
        f"TTFT {runs.ttft_short_ms[-1]:6.0f} / {runs.ttft_long_ms[-1]:6.0f} ms",
    ]
    parts += [
        f"x{n} {level['aggregate_tok_s'][-1]:6.1f} tok/s, longest TTFT {level['longest_ttft_ms'][-1]:6.0f} ms"
        for n, level in runs.concurrency.items()
    ]
    return f"{kind:>9}: " + ", ".join(parts) + f"; outside CPU {runs.outside_cpu_s[-1]:.2f}s"


def side_by_side(sides: list[Side], args: argparse.Namespace, quiet: QuietMachine) -> dict[str, SideRuns]:
    """Warm up, then rounds; in each round one side at a time does everything, alternating order."""
    for side in sides:
        for server in side.servers:
            quiet.wait()
            warm_up(server)
        print(f"warmed up: {side.kind}")
    runs = {side.kind: SideRuns() for side in sides}
    for index in range(args.rounds):
        for side in sides if index % 2 == 0 else sides[::-1]:
            label = f"round {index + 1}/{args.rounds} {side.kind}"
            one, outside = quiet.run(partial(measure_side, side, args, f"r{index}"), label)
            one.outside_cpu_s.append(outside)
            runs[side.kind].absorb(one)
            print(f"round {index + 1}/{args.rounds} {describe_round(side.kind, runs[side.kind])}")
    return runs
