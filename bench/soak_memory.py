"""Memory soak: the worker's RSS and first-token times over many requests of the shape real apps send
(a ~1,500-token system prompt that recurs, a new question each time), with the default settings.
Prints RSS, first-token p50/p95 and the prefix cache's trims every 100 requests; not part of `make test`.

    python bench/soak_memory.py [REQUESTS] [--prefix-cache N --cache-mb MB --bound-mb MB]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import processes
from bench.processes import OURS
from bench.shared_prompt import PREAMBLE, body
from bench.side_by_side import CHAT_PATH
from bench.sse_client import get, stream
from bench.stats import percentile


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def worker(master: int) -> int:
    return int(Path(f"/proc/{master}/task/{master}/children").read_text().split()[0])


class Liveness:
    """Probes /health/live every 50 ms on a thread while the soak runs: the worker's responsiveness
    through trims and warm-ups (a probe's own time, loopback)."""

    def __init__(self, port: int) -> None:
        self.port, self.times, self._stop = port, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            sent = time.perf_counter()
            get(self.port, "/health/live")
            self.times.append((time.perf_counter() - sent) * 1e3)

    def __enter__(self) -> Liveness:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def cache_state(port: int) -> dict:
    models = json.loads(get(port, "/api/llms")[1])["models"]
    return models[0].get("prefix_cache") or {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("requests", type=int, nargs="?", default=1000)
    parser.add_argument("--prefix-cache", type=int, default=None, help="LLM_PREFIX_CACHE_N")
    parser.add_argument("--cache-mb", type=int, default=None, help="LLM_PREFIX_CACHE_MB")
    parser.add_argument("--bound-mb", type=int, default=0, help="LLM_MAX_WORKER_MEMORY_MB")
    args = parser.parse_args()
    env = {"OTEL_SDK_DISABLED": "true", "LLM_MAX_WORKER_MEMORY_MB": str(args.bound_mb)}
    if args.prefix_cache is not None:
        env["LLM_PREFIX_CACHE_N"] = str(args.prefix_cache)
    if args.cache_mb is not None:
        env["LLM_PREFIX_CACHE_MB"] = str(args.cache_mb)
    log = Path(tempfile.mkdtemp()) / "soak.log"
    with processes.ours(log, env) as server:
        server.wait_ready("/health/ready", 180)
        port, pid = server.port, worker(server.process.pid)
        started, block, everything = time.perf_counter(), [], []
        warm = rss_mb(pid)
        with Liveness(port) as live:
            run(args, port, pid, block, everything, live)
        final, seconds = rss_mb(pid), time.perf_counter() - started
        print(
            f"{args.requests} requests in {seconds:.0f}s: RSS {warm:.0f} -> {final:.0f} MB; "
            f"first token p50 {percentile(everything, 0.5):.0f} ms, "
            f"p95 {percentile(everything, 0.95):.0f} ms; "
            f"liveness p99 {percentile(live.times, 0.99):.1f} ms, max {max(live.times):.1f} ms over "
            f"{len(live.times)} probes; cache {cache_state(port)}"
        )


def run(args: argparse.Namespace, port: int, pid: int, block: list, everything: list, live: Liveness) -> None:
    """The requests, with RSS, first tokens and the cache printed every 100."""
    for count in range(1, args.requests + 1):
        question = f"Question {count}: what does the town have?"
        ttft = stream(port, CHAT_PATH, body(OURS, PREAMBLE, question)).ttft_ms
        block.append(ttft)
        everything.append(ttft)
        if count == 1:
            print(f"after the first request: RSS {rss_mb(pid):.0f} MB, first token {ttft:.0f} ms", flush=True)
        if count % 100 == 0:
            state = cache_state(port)
            print(
                f"{count:5d} requests: RSS {rss_mb(pid):.0f} MB, first token p50 "
                f"{percentile(block, 0.5):.0f} ms p95 {percentile(block, 0.95):.0f} ms, "
                f"cache {state.get('estimated_mb')} MB, trims {state.get('trims')}, "
                f"liveness p99 {percentile(live.times, 0.99):.1f} ms",
                flush=True,
            )
            block.clear()


if __name__ == "__main__":
    main()
