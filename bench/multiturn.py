"""A five-turn chat sending the whole history each turn, on servers taking turns: first-token time per
turn (ours with the prefix cache on and off)."""

from __future__ import annotations

import statistics
import time
from functools import partial
from typing import Any

from bench.cpu import QuietMachine
from bench.processes import Server
from bench.prompts import MULTITURN_USER_TURNS, chat_opening
from bench.side_by_side import SETTLE_SECONDS, stream_chat


def chat_turns(server: Server, tag: str, reply_tokens: int) -> tuple[list[float], list[int]]:
    """The chat on one server: (first-token ms, prompt tokens) per turn; replies are the model's own."""
    messages = chat_opening(tag)
    ttfts, prompts = [], []
    for user in MULTITURN_USER_TURNS:
        messages.append({"role": "user", "content": user})
        reply = stream_chat(server, messages, reply_tokens)
        messages.append({"role": "assistant", "content": reply.text})
        ttfts.append(reply.ttft_ms)
        prompts.append(reply.prompt_tokens)
        time.sleep(SETTLE_SECONDS)
    return ttfts, prompts


def multiturn(
    servers: dict[str, Server], rounds: int, quiet: QuietMachine, reply_tokens: int
) -> dict[str, Any]:
    """Per-turn first-token times (medians over `rounds` chats) for each server, alternating order."""
    ttfts: dict[str, list[list[float]]] = {name: [] for name in servers}
    prompts: dict[str, list[int]] = {}
    names = list(servers)
    for name in names:  # one warm-up chat each
        chat_turns(servers[name], f"warm-{name}", reply_tokens)
    for index in range(rounds):
        for name in names if index % 2 == 0 else names[::-1]:
            label = f"multi-turn {index + 1}/{rounds} {name}"
            chat = partial(chat_turns, servers[name], f"m{index}", reply_tokens)
            (times, prompts[name]), _ = quiet.run(chat, label)
            ttfts[name].append(times)
            print(
                f"multi-turn {index + 1}/{rounds} {name:>17}: " + " ".join(f"{t:6.0f}" for t in times) + " ms"
            )
    medians = {
        name: [statistics.median(turn) for turn in zip(*runs, strict=True)] for name, runs in ttfts.items()
    }
    return {"ttft_ms_median": medians, "ttft_ms_runs": ttfts, "prompt_tokens": prompts}


def print_turns(result: dict[str, Any]) -> None:
    """First-token time per turn for each setting, the prompt sizes, and the last turn's ratio."""
    medians, prompts = result["ttft_ms_median"], result["prompt_tokens"]
    print()
    turns = len(next(iter(medians.values())))
    print(
        f"{'first token per turn (ms, median)':<36}" + "".join(f"{f'turn {i + 1}':>9}" for i in range(turns))
    )
    for name, values in medians.items():
        print(f"{name:<36}" + "".join(f"{v:>9.0f}" for v in values))
    any_prompts = next(iter(prompts.values()))
    print(f"{'prompt tokens':<36}" + "".join(f"{p:>9}" for p in any_prompts))
    on, off = medians["prefix cache on"], medians["prefix cache off"]
    print(
        f"turn {turns}: cache off / cache on = {off[-1] / on[-1]:.2f}x ({off[-1]:.0f} ms vs {on[-1]:.0f} ms)"
    )
