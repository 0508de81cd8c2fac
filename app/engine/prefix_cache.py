"""The server's account of one runner's prefix cache on CPU, where the engine never evicts it.

The engine keeps the KV cache of every finished sequence and reuses the longest shared prefix for a
later prompt (a recurring system prompt, an earlier turn of a chat). On CPU its eviction counts only
entries on a GPU, so nothing is ever dropped. The engine empties the whole cache on a failed step (its
error path calls `evict_all_caches`), and a batch of two equal prompts in one prefill always fails on
CPU; `app.engine.prefix_trim` uses that to trim when this account passes its budget, then warms the
hot prefixes again.

What the account knows:
- memory: each finished sequence's KV, in the engine's 512-token allocation steps, at the model's
  bytes per token (layers x KV heads x head size x K and V x 2 bytes: the engine's CPU KV is f16);
- hits: the message prefixes (tools included) of the sequences cached since the last trim; a request
  whose leading messages match one is a hit (the engine reuses at least those tokens);
- hot prefixes: the recurring heads of chats (system and developer messages, with their tools).

Counters are touched on the gevent hub only (greenlets take turns), so they need no lock.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.engine.catalog import ModelSource
from app.engine.gguf_meta import GGUFError, read_metadata
from app.engine.types import GenerationRequest

MB = 1024 * 1024
GROW_TOKENS = 512  # the engine's KV cache grows in steps of this many tokens (kv_cache CACHE_GROW_SIZE)
FALLBACK_TOKEN_BYTES = 64 * 1024  # when the model's shape cannot be read
_HEAD_ROLES = ("system", "developer")
_MAX_HEADS = 32  # heads remembered (least recently seen forgotten first)
REWARM_HEADS = 4  # hot heads warmed again after a trim
_REWARM_MIN_SEEN = 2  # a head warms again once it has recurred


@dataclass
class Head:
    """A chat's recurring beginning: the messages before the first user turn, and the tools."""

    messages: tuple[dict, ...]
    tools: tuple[str, ...]
    seen: int = 0


@dataclass
class PrefixCacheAccount:
    """One runner's cache: estimated bytes against the budget, hits, trims and hot heads."""

    budget_bytes: int
    token_bytes: int
    held_bytes: int = 0
    entries: int = 0
    hits: int = 0
    misses: int = 0
    trims: int = 0
    trim_failures: int = 0
    rewarms: int = 0
    warms_yielded: int = 0  # warming stopped early: a client's request came
    trimming: bool = False
    trim_works: bool = True  # False once the engine finished a trim request instead of failing it
    _known: set[int] = field(default_factory=set)
    _heads: OrderedDict[int, Head] = field(default_factory=OrderedDict)

    def admit(self, request: GenerationRequest) -> bool:
        """Count a chat request at submission as a hit or a miss; remember its head."""
        messages, tools = request.chat_messages(), request.tools
        chain = _chain(messages, tools)
        hit = any(key in self._known for key in chain)
        if hit:
            self.hits += 1
        else:
            self.misses += 1
        head = _head_length(messages)
        if head:
            key = chain[head - 1]
            known = self._heads.pop(key, None) or Head(tuple(messages[:head]), tuple(tools))
            known.seen += 1
            self._heads[key] = known
            while len(self._heads) > _MAX_HEADS:
                self._heads.popitem(last=False)
        return hit

    def finished(self, request: GenerationRequest, reply: str, tokens: int) -> bool:
        """A sequence of `tokens` (prompt and completion) ended in the engine, which keeps its KV
        cache. True when the account is now over budget and no trim is under way."""
        steps = -(-max(tokens, 1) // GROW_TOKENS)
        self.held_bytes += steps * GROW_TOKENS * self.token_bytes
        self.entries += 1
        messages = request.chat_messages()
        self._known.update(_chain([*messages, {"role": "assistant", "content": reply}], request.tools))
        return self.over_budget and not self.trimming and self.trim_works

    @property
    def over_budget(self) -> bool:
        return self.held_bytes > self.budget_bytes

    def cleared(self) -> None:
        """The engine emptied its cache."""
        self.held_bytes, self.entries = 0, 0
        self._known.clear()

    def hot_heads(self) -> list[Head]:
        """The heads worth warming again: recurring ones, most often seen first."""
        heads = [head for head in self._heads.values() if head.seen >= _REWARM_MIN_SEEN]
        return sorted(heads, key=lambda head: head.seen, reverse=True)[:REWARM_HEADS]

    def describe(self) -> dict[str, Any]:
        return {
            "budget_mb": round(self.budget_bytes / MB, 1),
            "estimated_mb": round(self.held_bytes / MB, 1),
            "entries": self.entries,
            "hits": self.hits,
            "misses": self.misses,
            "trims": self.trims,
            "trim_failures": self.trim_failures,
            "rewarms": self.rewarms,
            "rewarms_yielded": self.warms_yielded,
            "hot_prefixes": len(self.hot_heads()),
            "trimming": self.trimming,
        }


def _head_length(messages: list[dict]) -> int:
    """How many leading messages are system or developer messages."""
    count = 0
    for message in messages:
        if message.get("role") not in _HEAD_ROLES:
            break
        count += 1
    return count if count < len(messages) else 0


def _chain(messages: list[dict], tools: tuple[str, ...] | list[str]) -> list[int]:
    """A key for each leading run of messages (1, 2, ... all), tools included in every key."""
    keys, key = [], hash(tuple(tools))
    for message in messages:
        key = hash((key, json.dumps(message, sort_keys=True, default=str)))
        keys.append(key)
    return keys


def kv_token_bytes(source: ModelSource | None) -> int:
    """The engine's KV cache bytes per token for the model (K and V, every layer)."""
    shape = _shape(source) if source is not None else None
    if shape is None:
        return FALLBACK_TOKEN_BYTES
    layers, kv_heads, head_dim = shape
    element = 4 if os.environ.get("MISTRALRS_CPU_KV_F32", "0") not in ("", "0") else 2
    return 2 * layers * kv_heads * head_dim * element


def _shape(source: ModelSource) -> tuple[int, int, int] | None:
    """(layers, KV heads, head size) from the GGUF header or config.json; None when unreadable."""
    folder = Path(source.location)
    try:
        if source.format == "gguf" and source.filenames:
            meta = read_metadata(folder / source.filenames[0], {"general.architecture"})
            arch = meta.get("general.architecture", "llama")
            names = ("block_count", "attention.head_count_kv", "attention.head_count", "embedding_length")
            meta = read_metadata(folder / source.filenames[0], {f"{arch}.{n}" for n in names})
            layers, kv, heads, width = (meta.get(f"{arch}.{n}") for n in names)
            kv = kv or heads
            return (int(layers), int(kv), int(width) // int(heads)) if layers and kv and width else None
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        heads = config["num_attention_heads"]
        head_dim = config.get("head_dim") or config["hidden_size"] // heads
        return int(config["num_hidden_layers"]), int(config.get("num_key_value_heads", heads)), int(head_dim)
    except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError, GGUFError):
        return None
