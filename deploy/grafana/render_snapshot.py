"""Render docs/grafana-dashboard.png from the real server's /metrics under a short, bounded load."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench import processes  # noqa: E402
from bench.cpu import CpuMeter, CpuUse  # noqa: E402
from bench.processes import HOST, MODEL, Server  # noqa: E402
from bench.sse_client import frames, get, posted  # noqa: E402
from deploy.grafana.drawing import render  # noqa: E402
from deploy.grafana.panels import PANELS  # noqa: E402
from deploy.grafana.promql import WINDOW_SECONDS, Scrape, load, parse, save  # noqa: E402

DASHBOARD = Path(__file__).with_name("llm-inference-api.json")
DEFAULT_OUTPUT = ROOT / "docs" / "grafana-dashboard.png"
SERVER_LOG = Path("/tmp/llm-grafana-snapshot.server.log")
SCRAPES_FILE = Path("/tmp/llm-grafana-snapshot.scrapes.json")
MAX_CONCURRENT = 4
QUEUE_TIMEOUT_SECONDS = 2

READY_DEADLINE_SECONDS = 180.0
REQUEST_TIMEOUT_SECONDS = 120.0
SCRAPE_INTERVAL_SECONDS = 2.0
LOAD_SECONDS = 140.0  # steady workers run this long; events are scheduled inside it
COOLDOWN_SECONDS = 12.0  # scrapes after the load, so the panels show it ending

CHAT = [{"role": "user", "content": "Tell me a short story about a lighthouse keeper."}]
PROMPT = "Explain in a few sentences why the sky is blue."
BAD_REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("/api/generate", {"prompt": PROMPT, "max_tokens": 0}),  # 422: out of range
    ("/api/chat", {"messages": []}),  # 422: no messages
    ("/api/generate", {"prompt": PROMPT, "temperature": 5}),  # 422: out of range
    ("/api/generate", {"prompt": PROMPT, "model": "no-such-model-a"}),  # 404: unknown model
    ("/api/chat", {"messages": CHAT, "colour": "blue"}),  # 422: unknown field
    ("/api/generate", {"prompt": PROMPT, "model": "no-such-model-b"}),  # 404: unknown model
]
BAD_REQUEST_TIMES = (6, 18, 30, 45, 62, 78, 95, 108, 122, 134)
ABANDON_TIMES = (35, 95)  # two streams each, dropped after a few tokens
BURST_TIMES = (55, 115)  # more requests at once than there are slots
BURST_SIZE = 9


# -- the server and the client --------------------------------------------------------------------
def server() -> AbstractContextManager[Server]:
    """The real server (`gunicorn -c gunicorn.conf.py wsgi:app`) on loopback, 4 slots; always stopped."""
    limits = {
        "OTEL_SDK_DISABLED": "true",
        "LLM_MAX_CONCURRENT_REQUESTS": str(MAX_CONCURRENT),
        "LLM_QUEUE_TIMEOUT_SECONDS": str(QUEUE_TIMEOUT_SECONDS),
    }
    return processes.ours(SERVER_LOG, limits, grace=30)


def report_cpu(used: CpuUse, seconds: float) -> None:
    """Whether other processes took CPU during the load: the engine slows down many times over when
    anything else takes a core, so a busy machine makes for a misleading picture."""
    capacity = seconds * (os.cpu_count() or 1)
    print(
        f"CPU seconds during the load: server + this script {used.bench + used.server:.0f}, "
        f"other processes {used.other:.0f}, of {capacity:.0f} available"
    )
    if used.other > 0.1 * capacity:
        print(
            "WARNING: other processes took CPU during the load; the engine's figures are slowed. "
            "Rerun on a quiet machine."
        )


def post(port: int, path: str, body: dict[str, Any]) -> str:
    """POST JSON, read the whole answer; return the status."""
    with posted(port, path, body, REQUEST_TIMEOUT_SECONDS) as (_, response):
        response.read()
        return str(response.status)


def stream(port: int, path: str, body: dict[str, Any], hang_up_after: int | None = None) -> str:
    """POST to an SSE endpoint and read it to its last event, or hang up after some `token` events
    (leaving `posted` closes the connection mid-stream: the disconnect the server must notice)."""
    with posted(port, path, body, REQUEST_TIMEOUT_SECONDS) as (_, response):
        if response.status != 200:
            response.read()
            return str(response.status)
        tokens, last = 0, "none"
        for event, _ in frames(response):
            last = event
            tokens += event == "token"
            if hang_up_after is not None and tokens >= hang_up_after:
                return "200 hung up"
        return f"200 {last}"


# -- the load -------------------------------------------------------------------------------------
class Tally:
    """What the client saw, by endpoint and result; shared by the load threads."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def record(self, path: str, call: Callable[[], str]) -> None:
        try:
            result = call()
        except (OSError, http.client.HTTPException) as error:
            result = f"client error: {type(error).__name__}"
        with self._lock:
            self._counts[(path, result)] += 1

    def rows(self) -> list[tuple[str, str, int]]:
        return [(path, result, n) for (path, result), n in sorted(self._counts.items())]


def steady_worker(port: int, tally: Tally, deadline: float, jobs: list[tuple[str, dict[str, Any]]]) -> None:
    """Send `jobs` round-robin, one at a time, until the deadline."""
    turn = 0
    while time.monotonic() < deadline:
        path, body = jobs[turn % len(jobs)]
        call = stream if path.endswith("/stream") else post
        tally.record(path, lambda call=call, path=path, body=body: call(port, path, body))
        turn += 1
        time.sleep(0.5)


def spawn(target: Callable[..., None], *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def bad_request(port: int, tally: Tally, index: int) -> None:
    path, body = BAD_REQUESTS[index % len(BAD_REQUESTS)]
    tally.record(path, lambda: post(port, path, body))


def abandoned_stream(port: int, tally: Tally) -> None:
    path = "/api/chat/stream"
    body = {"messages": CHAT, "max_tokens": 200}
    tally.record(path, lambda: stream(port, path, body, hang_up_after=3))


def burst_request(port: int, tally: Tally) -> None:
    path = "/api/generate"
    tally.record(path, lambda: post(port, path, {"prompt": PROMPT, "max_tokens": 64}))


def timed_events() -> list[tuple[float, Callable[..., None], int]]:
    """(seconds after the start, action, how many at once)."""
    events: list[tuple[float, Callable[..., None], int]] = []
    events += [(t, lambda p, ta, i=i: bad_request(p, ta, i), 1) for i, t in enumerate(BAD_REQUEST_TIMES)]
    events += [(t, abandoned_stream, 2) for t in ABANDON_TIMES]
    events += [(t, burst_request, BURST_SIZE) for t in BURST_TIMES]
    return sorted(events, key=lambda event: event[0])


def run_load(port: int, tally: Tally) -> None:
    """Three steady clients for LOAD_SECONDS, plus bad requests, hang-ups and bursts at set times."""
    started = time.monotonic()
    deadline = started + LOAD_SECONDS
    chat_stream = ("/api/chat/stream", {"messages": CHAT, "max_tokens": 48})
    generate_stream = ("/api/generate/stream", {"prompt": PROMPT, "max_tokens": 48})
    generate = ("/api/generate", {"prompt": PROMPT, "max_tokens": 32})
    chat = ("/api/chat", {"messages": CHAT, "max_tokens": 32})
    threads = [
        spawn(steady_worker, port, tally, deadline, [chat_stream]),
        spawn(steady_worker, port, tally, deadline, [generate_stream, chat_stream]),
        spawn(steady_worker, port, tally, deadline, [generate, chat]),
    ]
    for offset, action, copies in timed_events():
        time.sleep(max(0.0, started + offset - time.monotonic()))
        threads += [spawn(action, port, tally) for _ in range(copies)]
    for thread in threads:
        thread.join(timeout=REQUEST_TIMEOUT_SECONDS)


# -- scraping -------------------------------------------------------------------------------------
class Scraper:
    """GET /metrics every SCRAPE_INTERVAL_SECONDS on its own thread until stopped."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.scrapes: list[Scrape] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                status, body = get(self.port, "/metrics")
                if status == 200:
                    self.scrapes.append(Scrape(time.time(), parse(body.decode())))
            except OSError as error:
                print(f"scrape failed: {error}")
            next_at += SCRAPE_INTERVAL_SECONDS
            self._stop.wait(max(0.0, next_at - time.monotonic()))


# -- main -----------------------------------------------------------------------------------------
def sorted_samples(scrape: Scrape, name: str) -> list[tuple[dict[str, str], float]]:
    rows = [(dict(labels), value) for labels, value in scrape.samples.get(name, {}).items()]
    return sorted(rows, key=lambda row: sorted(row[0].items()))


def print_totals(tally: Tally, last: Scrape) -> None:
    print("\nclient view (path, result, count):")
    for path, result, count in tally.rows():
        print(f"  {path:24} {result:28} {count:4d}")
    print("\nserver llm_requests_total (endpoint, model, outcome):")
    for labels, value in sorted_samples(last, "llm_requests_total"):
        print(f"  {labels['endpoint']:16} {labels['model']:38} {labels['outcome']:14} {value:4.0f}")
    print("\nserver flask_http_request_total (method, status):")
    for labels, value in sorted_samples(last, "flask_http_request_total"):
        print(f"  {labels['method']:6} {labels['status']:4} {value:4.0f}")


def collect() -> list[Scrape]:
    """Start the server, load it while scraping, stop it; print what both sides counted."""
    tally = Tally()
    with server() as running:
        port, process = running.port, running.process
        print(f"server on {HOST}:{port}, log in {SERVER_LOG}")
        ready = running.wait_ready("/health/ready", READY_DEADLINE_SECONDS)
        print(f"ready after {ready:.1f}s; load for {LOAD_SECONDS:g}s")
        scraper = Scraper(port)
        scraper.start()
        meter = CpuMeter()
        meter.watch(process.pid)
        before, started = meter.sample(), time.monotonic()
        try:
            run_load(port, tally)
            time.sleep(COOLDOWN_SECONDS)
        finally:
            scraper.stop()
        report_cpu(meter.since(before), time.monotonic() - started)
        if process.poll() is not None:
            raise RuntimeError(f"the server exited during the load ({process.returncode}); see {SERVER_LOG}")
    if len(scraper.scrapes) < 2:
        raise RuntimeError(f"only {len(scraper.scrapes)} scrapes of /metrics succeeded")
    print_totals(tally, scraper.scrapes[-1])
    return scraper.scrapes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--scrapes", type=Path, default=SCRAPES_FILE, help="where the scrapes are saved")
    parser.add_argument("--replay", action="store_true", help="render the saved scrapes; no server, no load")
    args = parser.parse_args()
    dashboard = json.loads(DASHBOARD.read_text())
    missing = {p["title"] for p in dashboard["panels"]} - PANELS.keys()
    if missing:
        sys.exit(f"no renderer for panels: {sorted(missing)}")
    if args.replay:
        scrapes = load(args.scrapes)
    else:
        scrapes = collect()
        save(scrapes, args.scrapes)
    minutes = (scrapes[-1].at - scrapes[0].at) / 60
    subtitle = (
        f"Real data: gunicorn + mistral.rs on CPU, {MODEL}, limit {MAX_CONCURRENT} slots, "
        f"queue timeout {QUEUE_TIMEOUT_SECONDS}s  ·  {minutes:.1f} min of load from "
        f"deploy/grafana/render_snapshot.py  ·  scrape {SCRAPE_INTERVAL_SECONDS:g}s, rate window "
        f"{WINDOW_SECONDS:g}s  ·  model = All"
    )
    render(dashboard, scrapes, args.output, subtitle)
    print(f"\nwrote {args.output} ({args.output.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
