"""The request shape real apps send: a long system prompt that recurs (rules, tools, a RAG preamble)
and a short new question each time. First-token time per request on each server; requests 2-6 of a
round are the ones a cache can help (the first of each round pays the cold prompt)."""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench.cpu import QuietMachine
from bench.processes import MODEL, OURS, Server
from bench.prompts import LONG_TEXT
from bench.side_by_side import CHAT_PATH, SETTLE_SECONDS
from bench.sse_client import stream

# About 1,500 tokens: four copies of the long prose, as an app's fixed preamble.
PREAMBLE = "Answer questions about the town described below, in one short sentence.\n\n" + "\n\n".join(
    [LONG_TEXT] * 4
)
REQUESTS = 6
ANSWER_TOKENS = 4


def body(kind: str, system: str, question: str) -> dict[str, Any]:
    """A streamed greedy chat. llama.cpp keeps its prompt cache on (as it ships) for this case."""
    messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
    request = {
        "messages": messages,
        "max_tokens": ANSWER_TOKENS,
        "temperature": 0.0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    return {"model": MODEL, **request} if kind == OURS else request


def one_round(server: Server, tag: str) -> list[float]:
    """First-token ms of REQUESTS requests sharing one system prompt (new to the server: tagged)."""
    system = f"[{tag}] {PREAMBLE}"
    times = []
    for index in range(REQUESTS):
        question = f"Question {index} of round {tag}: what does the town have?"
        times.append(stream(server.port, CHAT_PATH, body(server.kind, system, question)).ttft_ms)
        time.sleep(SETTLE_SECONDS)
    return times


def shared_prompt(servers: dict[str, Server], rounds: int, quiet: QuietMachine) -> dict[str, Any]:
    """Rounds on each server, alternating which goes first; the median warm first token of each."""
    runs: dict[str, list[list[float]]] = {name: [] for name in servers}
    names = list(servers)
    for index in range(rounds):
        for name in names if index % 2 == 0 else names[::-1]:
            times, _ = quiet.run(lambda s=servers[name], i=index: one_round(s, f"s{i}"), f"shared {name}")
            runs[name].append(times)
            print(
                f"shared prompt {index + 1}/{rounds} {name:>10}: "
                + " ".join(f"{t:6.0f}" for t in times)
                + " ms"
            )
    warm = {name: statistics.median(t for times in r for t in times[1:]) for name, r in runs.items()}
    cold = {name: statistics.median(times[0] for times in r) for name, r in runs.items()}
    return {"warm_ttft_ms_median": warm, "cold_ttft_ms_median": cold, "ttft_ms_runs": runs}


def print_shared(result: dict[str, Any]) -> None:
    warm, cold = result["warm_ttft_ms_median"], result["cold_ttft_ms_median"]
    print()
    for name in warm:
        print(
            f"shared system prompt, {name:>10}: first request {cold[name]:.0f} ms, "
            f"requests 2-{REQUESTS} {warm[name]:.0f} ms"
        )
    if len(warm) == 2:
        ours, other = list(warm.values())
        print(f"shared system prompt: warm first token ours / llama.cpp = {ours / other:.2f}x")
