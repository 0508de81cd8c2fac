"""What a running batch costs an interactive request: its first-token time on an idle server, then
while a batch of long items runs in the lowest lane (same server, same prompts, one run). Reports the
ratio; nothing here is asserted.

    python bench/batch_interference.py [--requests 8] [--slots 4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import processes
from bench.processes import MODEL
from bench.side_by_side import CHAT_PATH
from bench.sse_client import stream

BATCH_ITEMS = 60


def post(port: int, path: str, data: bytes, content_type: str) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data, {"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())


def start_batch(port: int) -> str:
    lines = [
        {
            "custom_id": f"b-{n}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": MODEL,
                "messages": [{"role": "user", "content": f"Write a long essay about the number {n}."}],
                "max_tokens": 200,
            },
        }
        for n in range(BATCH_ITEMS)
    ]
    boundary = "benchboundary"
    content = "\n".join(map(json.dumps, lines)).encode()
    form = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="b.jsonl"\r\n'
            "Content-Type: application/jsonl\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    upload = post(port, "/v1/files", form, f"multipart/form-data; boundary={boundary}")
    body = {"input_file_id": upload["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    return post(port, "/v1/batches", json.dumps(body).encode(), "application/json")["id"]


def background_slots(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith("llm_background_slots_in_use "):
                return float(line.split()[1])
    return 0.0


def first_tokens(port: int, count: int, tag: str) -> list[float]:
    times = []
    for n in range(count):
        question = {"role": "user", "content": f"[{tag} {n}] Name a colour."}
        body = {
            "model": MODEL,
            "messages": [question],
            "max_tokens": 8,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        times.append(stream(port, CHAT_PATH, body).ttft_ms)
        time.sleep(0.3)  # between requests, as a person types; not synchronisation
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--slots", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {"LLM_DATA_DIR": str(Path(tmp) / "data"), "LLM_MAX_CONCURRENT_REQUESTS": str(args.slots)}
        with processes.ours(Path(tmp) / "server.log", env) as server:
            server.wait_ready("/health/ready", 300)
            idle = first_tokens(server.port, args.requests, "idle")
            start_batch(server.port)
            while background_slots(server.port) < 1:  # the batch's items are in the engine
                time.sleep(0.1)
            held = background_slots(server.port)
            busy = first_tokens(server.port, args.requests, "busy")
    idle_ms, busy_ms = statistics.median(idle), statistics.median(busy)
    print(f"interactive first token, median of {args.requests}:")
    print(f"  idle {idle_ms:.0f} ms, during a batch {busy_ms:.0f} ms: {busy_ms / idle_ms:.2f}x")
    print(
        f"  slots {args.slots}: the batch may hold {max(1, args.slots - 1)}; it held {held:.0f} at the first"
    )
    print(f"  during the batch, each: {', '.join(f'{t:.0f}' for t in busy)} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
