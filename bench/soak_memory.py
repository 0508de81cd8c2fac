"""Memory soak: the worker's RSS over many generations with the default settings (and optionally with
the prefix cache on and a memory bound). Prints RSS every 100 generations; not part of `make test`.

    python bench/soak_memory.py [GENERATIONS] [--prefix-cache N --bound-mb MB]
"""

from __future__ import annotations

import argparse
import http.client
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import processes
from bench.processes import HOST

# Distinct prompts: the engine's prefix cache keys on whole sequences, a repeated prompt hides growth.
BODY = '{{"prompt": "Say hi, number {}.", "max_tokens": 16, "temperature": 0}}'


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def worker(master: int) -> int:
    return int(Path(f"/proc/{master}/task/{master}/children").read_text().split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("generations", type=int, nargs="?", default=1000)
    parser.add_argument("--prefix-cache", type=int, default=None, help="LLM_PREFIX_CACHE_N")
    parser.add_argument("--bound-mb", type=int, default=0, help="LLM_MAX_WORKER_MEMORY_MB")
    args = parser.parse_args()
    env = {"OTEL_SDK_DISABLED": "true", "LLM_MAX_WORKER_MEMORY_MB": str(args.bound_mb)}
    if args.prefix_cache is not None:
        env["LLM_PREFIX_CACHE_N"] = str(args.prefix_cache)
    log = Path(tempfile.mkdtemp()) / "soak.log"
    with processes.ours(log, env) as server:
        server.wait_ready("/health/ready", 180)
        port, pid = server.port, worker(server.process.pid)
        connection = http.client.HTTPConnection(HOST, port, timeout=300)
        started = time.perf_counter()
        for count in range(1, args.generations + 1):
            body = BODY.format(count)
            connection.request("POST", "/api/generate", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"generation {count}: HTTP {response.status}")
            if count == 20:
                warm = rss_mb(pid)
                print(f"after warm-up (20): {warm:.0f} MB", flush=True)
            if count % 100 == 0:
                print(f"{count:5d} generations: RSS {rss_mb(pid):.0f} MB", flush=True)
        final = rss_mb(pid)
        seconds = time.perf_counter() - started
        print(
            f"{args.generations} generations in {seconds:.0f}s: RSS {warm:.0f} -> {final:.0f} MB "
            f"({final - warm:+.0f} MB after warm-up)"
        )


if __name__ == "__main__":
    main()
