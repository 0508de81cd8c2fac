"""The ways the engine allows to empty its prefix cache on CPU, measured in process: RSS freed, time
taken, and the longest stall of a Python ticker thread while it happens (a GIL hold stalls the
worker's every request). Not part of `make test`.

    python bench/trim_ways.py
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import mistralrs

from app.engine.catalog import embedded_model_file
from app.engine.memory import rss_bytes, trim

MB = 1024 * 1024
SYSTEM = " ".join(f"Rule {i}: answer briefly and politely, citing rule {i}." for i in range(60))


class Ticker:
    """A thread that wakes every millisecond; its longest gap is the longest GIL hold."""

    def __init__(self) -> None:
        self.gap = 0.0
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        last = time.perf_counter()
        while not self._stop:
            time.sleep(0.001)
            now = time.perf_counter()
            self.gap = max(self.gap, now - last)
            last = now

    def __enter__(self) -> Ticker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        self._thread.join()


def load() -> mistralrs.Runner:
    path = embedded_model_file()
    which = mistralrs.Which.GGUF(quantized_model_id=str(path.parent), quantized_filename=[path.name])
    return mistralrs.Runner(
        which=which, max_seqs=4, prefix_cache_n=16, in_situ_quant="Q8_0", token_source="none"
    )


def ask(runner: mistralrs.Runner, question: str, n: int = 1) -> tuple[float, int, str | None]:
    request = mistralrs.ChatCompletionRequest(
        model="default",
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}],
        max_tokens=4,
        temperature=0.0,
        n_choices=n,
        stream=True,
    )
    started = time.perf_counter()
    first = None
    prompt = 0
    try:
        for chunk in runner.send_chat_completion_request(request):
            first = first or time.perf_counter() - started
            if chunk.usage is not None:
                prompt = chunk.usage.prompt_tokens
    except (ValueError, RuntimeError) as error:
        return time.perf_counter() - started, prompt, str(error)[:80]
    return first or 0.0, prompt, None


def fill(runner: mistralrs.Runner, count: int, tag: str) -> None:
    for i in range(count):
        ask(runner, f"{tag} question number {i}: what is {i} plus {i}?")


def mb() -> float:
    trim()
    return rss_bytes() / MB


def main() -> None:
    runner = load()
    ask(runner, "warm-up")
    base = mb()
    fill(runner, 20, "a")
    grown = mb()
    print(f"20 shared-prompt requests: RSS {base:.0f} -> {grown:.0f} MB ({(grown - base) / 20:.1f} MB each)")
    cold, _, _ = ask(runner, "a fresh question, cache warm?")
    print(f"first token with the system prompt cached: {cold * 1000:.0f} ms")

    # 1. The engine's step-error eviction: two equal-length prompts in one prefill fail on CPU, and
    # the engine's error path empties the whole prefix cache.
    with Ticker() as ticker:
        started = time.perf_counter()
        took, _, error = ask(runner, "evict please", n=2)
        seconds = time.perf_counter() - started
    after = mb()
    print(
        f"step-error eviction (n_choices=2): {seconds * 1000:.0f} ms, error {error!r}, "
        f"RSS {grown:.0f} -> {after:.0f} MB, longest ticker gap {ticker.gap * 1000:.1f} ms"
    )
    took, _, _ = ask(runner, "a fresh question after eviction")
    print(f"first token after eviction (cold system prompt): {took * 1000:.0f} ms")
    took, _, _ = ask(runner, "another fresh question after eviction")
    print(f"first token after one re-warm: {took * 1000:.0f} ms")
    for cycle in range(3):
        fill(runner, 20, f"c{cycle}")
        full = mb()
        ask(runner, f"evict {cycle}", n=2)
        print(f"cycle {cycle}: 20 more requests RSS {full:.0f} MB, after eviction {mb():.0f} MB")

    # 2. unload_model / reload_model.
    fill(runner, 20, "b")
    grown = mb()
    model = runner.list_models()[0]
    with Ticker() as ticker:
        started = time.perf_counter()
        try:
            runner.unload_model(model)
            unloaded = time.perf_counter() - started
            mid = mb()
            runner.reload_model(model)
            reload = time.perf_counter() - started - unloaded
            outcome = f"unload {unloaded * 1000:.0f} ms (RSS {mid:.0f} MB), reload {reload * 1000:.0f} ms"
        except (ValueError, RuntimeError) as error:
            outcome = f"failed: {error}"
    after = mb()
    print(
        f"unload/reload: {outcome}, RSS {grown:.0f} -> {after:.0f} MB, "
        f"longest ticker gap {ticker.gap * 1000:.1f} ms"
    )
    took, _, error = ask(runner, "a fresh question after reload")
    print(f"after reload: first token {took * 1000:.0f} ms, error {error!r}")

    # 3. A second runner loaded in the background.
    with Ticker() as ticker:
        started = time.perf_counter()
        second = load()
        seconds = time.perf_counter() - started
    print(
        f"second runner: load {seconds * 1000:.0f} ms, longest ticker gap {ticker.gap * 1000:.1f} ms, "
        f"RSS {mb():.0f} MB"
    )
    del runner
    print(f"first runner dropped: RSS {mb():.0f} MB")
    del second


if __name__ == "__main__":
    main()
