"""N streams released together (one client thread each, behind a barrier), and what such a burst shows:
aggregate throughput, each stream's first-token wait and latency."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.sse_client import REQUEST_TIMEOUT_SECONDS, Stream


@dataclass(frozen=True)
class Burst:
    """The streams of one burst and when they were released (perf_counter seconds)."""

    released: float
    streams: list[Stream]

    @property
    def aggregate_tok_s(self) -> float:
        """All completion tokens / (the last stream's last token - the release)."""
        span = max(s.last for s in self.streams) - self.released
        return sum(s.completion_tokens for s in self.streams) / span

    @property
    def ttft_ms(self) -> list[float]:
        return [s.ttft_ms for s in self.streams]

    @property
    def latency_s(self) -> list[float]:
        return [s.latency_s for s in self.streams]

    @property
    def tokens(self) -> list[int]:
        return [s.completion_tokens for s in self.streams]


def burst(count: int, call: Callable[[int], Stream], label: str) -> Burst:
    """`call(i)` for i in 0..count-1, each on its own thread, all released at once by a barrier."""
    released: list[float] = []
    barrier = threading.Barrier(count, action=lambda: released.append(time.perf_counter()))
    results: list[Stream | Exception | None] = [None] * count

    def client(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = call(index)
        except Exception as error:  # reported below, in the calling thread
            results[index] = error

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(REQUEST_TIMEOUT_SECONDS)
    streams = [r for r in results if isinstance(r, Stream)]
    if len(streams) < count:
        failure = next((r for r in results if not isinstance(r, Stream)), None)
        raise RuntimeError(
            f"{label}: {count - len(streams)} of {count} concurrent streams failed: {failure!r}"
        )
    return Burst(released[0], streams)
