"""Render docs/grafana-dashboard.png from the real server's /metrics under a short, bounded load."""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench import processes  # noqa: E402
from bench.processes import free_port  # noqa: E402

DASHBOARD = Path(__file__).with_name("llm-inference-api.json")
DEFAULT_OUTPUT = ROOT / "docs" / "grafana-dashboard.png"
SERVER_LOG = Path("/tmp/llm-grafana-snapshot.server.log")
SCRAPES_FILE = Path("/tmp/llm-grafana-snapshot.scrapes.json")
MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
HOST = "127.0.0.1"  # loopback only
MAX_CONCURRENT = 4
QUEUE_TIMEOUT_SECONDS = 2

READY_DEADLINE_SECONDS = 180.0
REQUEST_TIMEOUT_SECONDS = 120.0
SCRAPE_INTERVAL_SECONDS = 2.0
WINDOW_SECONDS = 30.0  # the rate window, as $__rate_interval would be for a 2 s scrape on a quiet panel
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

# Grafana's dark theme
BACKGROUND = "#111217"
PANEL = "#181b1f"
BORDER = "#2c3235"
TEXT = "#ccccdc"
MUTED = "#8e8e9e"
GRID = "#24272c"
COLORS = {
    "green": "#73bf69",
    "yellow": "#fade2a",
    "red": "#f2495c",
    "orange": "#ff9830",
    "purple": "#b877d9",
    "blue": "#5794f2",
    "text": TEXT,
}
PALETTE = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#705da0"]

Labels = frozenset[tuple[str, str]]
Samples = dict[str, dict[Labels, float]]


@dataclass(frozen=True)
class Scrape:
    """One GET /metrics: when, and every sample by name and label set."""

    at: float
    samples: Samples


@dataclass
class Series:
    """One line of a panel, aligned with the scrape times; NaN where the query has no value."""

    label: str
    values: list[float]


# -- the server -----------------------------------------------------------------------------------


@contextmanager
def server(port: int) -> Iterator[subprocess.Popen]:
    """The real server (`gunicorn -c gunicorn.conf.py wsgi:app`) on loopback; always stopped."""
    env = {
        **os.environ,
        "LLM_ALLOWED_MODELS": MODEL,
        "LLM_INFERENCE_HOSTNAME": HOST,
        "LLM_INFERENCE_PORT": str(port),
        "LOG_FORMAT": "pretty",
        "OTEL_SDK_DISABLED": "true",
        "LLM_MAX_CONCURRENT_REQUESTS": str(MAX_CONCURRENT),
        "LLM_QUEUE_TIMEOUT_SECONDS": str(QUEUE_TIMEOUT_SECONDS),
    }
    with processes.gunicorn(env, SERVER_LOG, grace=30) as process:
        yield process


def wait_ready(process: subprocess.Popen, port: int) -> float:
    """Poll GET /health/ready until 200; return the seconds it took."""
    return processes.wait_ready(process, port, "/health/ready", SERVER_LOG, READY_DEADLINE_SECONDS)


class CpuMeter:
    """CPU seconds that processes other than this script and its server used (Linux /proc).

    The engine slows down many times over when anything else takes a core, so a busy machine
    makes for a misleading picture.
    """

    def __init__(self, server_pid: int) -> None:
        self._pids = (os.getpid(), server_pid)
        self._started = time.monotonic()
        self._busy, self._ours = self._sample()

    def _tree(self) -> list[int]:
        pids = list(self._pids)
        children = Path(f"/proc/{self._pids[1]}/task/{self._pids[1]}/children")
        return pids + [int(pid) for pid in children.read_text().split()] if children.exists() else pids

    def _sample(self) -> tuple[int, int]:
        user, nice, system, _idle, _iowait, irq, softirq = map(
            int, Path("/proc/stat").read_text().split()[1:8]
        )
        ours = 0
        for pid in self._tree():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ours += int(fields[11]) + int(fields[12])  # utime + stime, every thread
        return user + nice + system + irq + softirq, ours

    def report(self) -> None:
        busy, ours = self._sample()
        tick = os.sysconf("SC_CLK_TCK")
        other = max(0, (busy - self._busy) - (ours - self._ours)) / tick
        capacity = (time.monotonic() - self._started) * (os.cpu_count() or 1)
        print(
            f"CPU seconds during the load: server + this script {(ours - self._ours) / tick:.0f}, "
            f"other processes {other:.0f}, of {capacity:.0f} available"
        )
        if other > 0.1 * capacity:
            print(
                "WARNING: other processes took CPU during the load; the engine's figures are slowed. "
                "Rerun on a quiet machine."
            )


# -- the client -----------------------------------------------------------------------------------
def get(port: int, path: str, timeout: float = 10) -> tuple[int, str]:
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def post(port: int, path: str, body: dict[str, Any]) -> str:
    """POST JSON, read the whole answer; return the status."""
    connection = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT_SECONDS)
    try:
        headers = {"Content-Type": "application/json"}
        connection.request("POST", path, body=json.dumps(body), headers=headers)
        response = connection.getresponse()
        response.read()
        return str(response.status)
    finally:
        connection.close()


def stream(port: int, path: str, body: dict[str, Any], hang_up_after: int | None = None) -> str:
    """POST to an SSE endpoint and read it to its last event, or hang up after some `token` events."""
    connection = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT_SECONDS)
    try:
        headers = {"Content-Type": "application/json"}
        connection.request("POST", path, body=json.dumps(body), headers=headers)
        response = connection.getresponse()
        if response.status != 200:
            response.read()
            return str(response.status)
        tokens, last = 0, "none"
        for raw in response:
            line = raw.decode().strip()
            if line.startswith("event: "):
                last = line.removeprefix("event: ")
                tokens += last == "token"
                if hang_up_after is not None and tokens >= hang_up_after:
                    return "200 hung up"
        return f"200 {last}"
    finally:
        connection.close()  # mid-stream, this is the disconnect the server must notice


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
def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return samples


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
                    self.scrapes.append(Scrape(time.time(), parse(body)))
            except OSError as error:
                print(f"scrape failed: {error}")
            next_at += SCRAPE_INTERVAL_SECONDS
            self._stop.wait(max(0.0, next_at - time.monotonic()))


def save(scrapes: list[Scrape], path: Path) -> None:
    rows = [
        [
            scrape.at,
            [
                [name, dict(labels), value]
                for name, series in scrape.samples.items()
                for labels, value in series.items()
            ],
        ]
        for scrape in scrapes
    ]
    path.write_text(json.dumps(rows))


def load(path: Path) -> list[Scrape]:
    scrapes = []
    for at, rows in json.loads(path.read_text()):
        samples: Samples = {}
        for name, labels, value in rows:
            samples.setdefault(name, {})[frozenset(labels.items())] = value
        scrapes.append(Scrape(at, samples))
    return scrapes


# -- PromQL, the parts the panels use ---------------------------------------------------------------
def matches(labels: Labels, where: dict[str, set[str]]) -> bool:
    values = dict(labels)
    return all(values.get(name) in allowed for name, allowed in where.items())


def key_of(labels: Labels, by: tuple[str, ...]) -> tuple[str, ...]:
    values = dict(labels)
    return tuple(values.get(name, "") for name in by)


def windows(scrapes: list[Scrape]) -> Iterator[tuple[int, int]]:
    """(i, j) for every scrape i whose window holds an earlier scrape: j is the window's first."""
    for i in range(len(scrapes)):
        j = i
        while j > 0 and scrapes[j - 1].at >= scrapes[i].at - WINDOW_SECONDS:
            j -= 1
        if j < i:
            yield i, j


def increases(
    scrapes: list[Scrape], j: int, i: int, name: str, where: dict[str, set[str]]
) -> dict[Labels, float]:
    """Counter increase from scrape j to scrape i per series, resets handled.

    A series absent at j counts from 0: the server started with the load, so its first increments
    are real (Prometheus would drop them, having no earlier sample).
    """
    before = scrapes[j].samples.get(name, {})
    out: dict[Labels, float] = {}
    for labels, now in scrapes[i].samples.get(name, {}).items():
        if matches(labels, where):
            then = before.get(labels, 0.0)
            out[labels] = now - then if now >= then else now
    return out


def sum_by(values: dict[Labels, float], by: tuple[str, ...]) -> dict[tuple[str, ...], float]:
    out: dict[tuple[str, ...], float] = {}
    for labels, value in values.items():
        key = key_of(labels, by)
        out[key] = out.get(key, 0.0) + value
    return out


def rate(
    scrapes: list[Scrape], name: str, by: tuple[str, ...] = (), where: dict[str, set[str]] | None = None
) -> dict[tuple[str, ...], list[float]]:
    """sum by (by) (rate(name{where}[WINDOW])), per scrape (no extrapolation to the window's edges)."""
    out: dict[tuple[str, ...], list[float]] = {}
    for i, j in windows(scrapes):
        seconds = scrapes[i].at - scrapes[j].at
        for key, delta in sum_by(increases(scrapes, j, i, name, where or {}), by).items():
            out.setdefault(key, [math.nan] * len(scrapes))[i] = delta / seconds
    return out


def histogram_quantile(q: float, buckets: dict[float, float]) -> float:
    """Prometheus's bucketQuantile: linear interpolation inside the bucket that holds the rank."""
    bounds = sorted(buckets)
    if len(bounds) < 2 or not math.isinf(bounds[-1]):
        return math.nan
    counts = [buckets[bound] for bound in bounds]
    for k in range(1, len(counts)):  # ensureMonotonic
        counts[k] = max(counts[k], counts[k - 1])
    observations = counts[-1]
    if observations == 0:
        return math.nan
    rank = q * observations
    b = next((k for k in range(len(bounds) - 1) if counts[k] >= rank), len(bounds) - 1)
    if b == len(bounds) - 1:
        return bounds[-2]
    if b == 0 and bounds[0] <= 0:
        return bounds[0]
    start, count = 0.0, counts[b]
    if b > 0:
        start, count, rank = bounds[b - 1], counts[b] - counts[b - 1], rank - counts[b - 1]
    return start + (bounds[b] - start) * (rank / count)


def quantile(
    q: float,
    scrapes: list[Scrape],
    name: str,
    by: tuple[str, ...] = (),
    where: dict[str, set[str]] | None = None,
) -> dict[tuple[str, ...], list[float]]:
    """histogram_quantile(q, sum by (le, by) (rate(name_bucket{where}[WINDOW]))), per scrape."""
    out: dict[tuple[str, ...], list[float]] = {}
    for i, j in windows(scrapes):
        grouped: dict[tuple[str, ...], dict[float, float]] = {}
        deltas = sum_by(increases(scrapes, j, i, f"{name}_bucket", where or {}), (*by, "le"))
        for (*key, le), delta in deltas.items():
            grouped.setdefault(tuple(key), {})[float(le)] = delta
        for key, buckets in grouped.items():
            out.setdefault(key, [math.nan] * len(scrapes))[i] = histogram_quantile(q, buckets)
    return out


def gauge(
    scrapes: list[Scrape], name: str, by: tuple[str, ...] = (), where: dict[str, set[str]] | None = None
) -> dict[tuple[str, ...], list[float]]:
    """sum by (by) (name{where}), per scrape."""
    out: dict[tuple[str, ...], list[float]] = {}
    for i, scrape in enumerate(scrapes):
        values = {k: v for k, v in scrape.samples.get(name, {}).items() if matches(k, where or {})}
        for key, value in sum_by(values, by).items():
            out.setdefault(key, [math.nan] * len(scrapes))[i] = value
    return out


# -- the panels: the same queries as the dashboard JSON -------------------------------------------
def named(
    groups: dict[tuple[str, ...], list[float]], label: Callable[[tuple[str, ...]], str]
) -> list[Series]:
    return [Series(label(key), values) for key, values in sorted(groups.items())]


def loaded_models(scrapes: list[Scrape]) -> set[str]:
    """What `label_values(llm_model_loaded, model)` lists: the dashboard's $model, All selected."""
    return {dict(labels)["model"] for labels in scrapes[-1].samples.get("llm_model_loaded", {})}


def model_loaded(s: list[Scrape], m: dict[str, set[str]]) -> list[Series]:
    return named(gauge(s, "llm_model_loaded", ("model",), m), lambda k: k[0])


def load_duration(s: list[Scrape], m: dict[str, set[str]]) -> list[Series]:
    return named(gauge(s, "llm_model_load_duration_seconds", ("model",), m), lambda k: k[0])


def outcomes(s: list[Scrape], m: dict[str, set[str]]) -> list[Series]:
    return named(rate(s, "llm_requests_total", ("outcome",), m), lambda k: k[0])


def http_statuses(s: list[Scrape], m: dict[str, set[str]]) -> list[Series]:
    return named(rate(s, "flask_http_request_total", ("status",)), lambda k: k[0])


def tokens(s: list[Scrape], m: dict[str, set[str]]) -> list[Series]:
    completion = rate(s, "llm_completion_tokens_total", (), m)
    prompt = rate(s, "llm_prompt_tokens_total", (), m)
    return named(completion, lambda _: "completion tokens/s") + named(prompt, lambda _: "prompt tokens/s")


def concurrency(s: list[Scrape], m: dict[str, set[str]]) -> list[Series]:
    running = named(gauge(s, "llm_requests_running"), lambda _: "running")
    waiting = named(gauge(s, "llm_requests_waiting"), lambda _: "waiting")
    return running + waiting + named(gauge(s, "llm_max_concurrent_requests"), lambda _: "limit")


def p50_p95(name: str) -> Callable[[list[Scrape], dict[str, set[str]]], list[Series]]:
    def panel(s: list[Scrape], m: dict[str, set[str]]) -> list[Series]:
        return named(quantile(0.5, s, name, (), m), lambda _: "p50") + named(
            quantile(0.95, s, name, (), m), lambda _: "p95"
        )

    return panel


def queue_wait(s: list[Scrape], m: dict[str, set[str]]) -> list[Series]:
    return named(quantile(0.95, s, "llm_queue_wait_seconds", ("endpoint",)), lambda k: k[0])


def durations(s: list[Scrape], m: dict[str, set[str]]) -> list[Series]:
    name = "llm_request_duration_seconds"
    series = named(quantile(0.5, s, name, ("endpoint",), m), lambda k: f"{k[0]} p50")
    series += named(quantile(0.95, s, name, ("endpoint",), m), lambda k: f"{k[0]} p95")
    return sorted(series, key=lambda one: one.label)


PANELS: dict[str, Callable[[list[Scrape], dict[str, set[str]]], list[Series]]] = {
    "Model loaded": model_loaded,
    "Model load duration": load_duration,
    "Request rate by outcome": outcomes,
    "HTTP request rate by status": http_statuses,
    "Token throughput": tokens,
    "Concurrency: running / waiting vs limit": concurrency,
    "Time to first token (p50 / p95)": p50_p95("llm_time_to_first_token_seconds"),
    "Time per output token (p50 / p95)": p50_p95("llm_time_per_output_token_seconds"),
    "Queue wait p95": queue_wait,
    "Request duration by endpoint (p50 / p95)": durations,
}


# -- drawing --------------------------------------------------------------------------------------
def format_value(value: float, unit: str) -> str:
    """A tick or stat value in the panel's Grafana unit."""
    if unit == "s":
        if value == 0:
            return "0 s"
        if abs(value) < 1:
            return f"{value * 1000:.3g} ms"
        return f"{value:.3g} s"
    if unit == "reqps":
        return f"{value:.3g} req/s"
    if unit.startswith("suffix:"):
        return f"{value:.3g}{unit.removeprefix('suffix:')}"
    return f"{value:.3g}"


@dataclass
class Style:
    """How a series is drawn: Grafana's defaults for the panel, then its field overrides."""

    color: str
    dashed: bool = False
    fill: float = 0.08


def style_of(panel: dict[str, Any], label: str, default_color: str) -> Style:
    style = Style(default_color, fill=panel["fieldConfig"]["defaults"]["custom"]["fillOpacity"] / 100)
    for override in panel["fieldConfig"]["overrides"]:
        matcher = override["matcher"]
        hit = (matcher["id"] == "byName" and matcher["options"] == label) or (
            matcher["id"] == "byRegexp" and re.search(matcher["options"], label)
        )
        for prop in override["properties"] if hit else []:
            if prop["id"] == "color":
                style.color = COLORS[prop["value"]["fixedColor"]]
            elif prop["id"] == "custom.lineStyle":
                style.dashed = prop["value"]["fill"] == "dash"
            elif prop["id"] == "custom.fillOpacity":
                style.fill = prop["value"] / 100
    return style


def draw_timeseries(ax: Axes, panel: dict[str, Any], series: list[Series], times: list[datetime]) -> None:
    unit = panel["fieldConfig"]["defaults"].get("unit", "none")
    for n, one in enumerate(series):
        style = style_of(panel, one.label, PALETTE[n % len(PALETTE)])
        line = (0, (4, 3)) if style.dashed else "-"
        ax.plot(times, one.values, color=style.color, lw=1.6, ls=line, label=one.label)
        ax.fill_between(times, one.values, color=style.color, alpha=style.fill, lw=0)
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(lambda value, _: format_value(value, unit))
    ax.yaxis.set_major_locator(plt.MaxNLocator(5, integer=unit == "none"))
    ax.set_xlim(times[0], times[-1])
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=4, maxticks=8))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
    ax.grid(color=GRID, lw=0.8)
    ax.tick_params(colors=MUTED, labelsize=7.5, length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_facecolor(PANEL)
    legend = {"fontsize": 7.5, "labelcolor": TEXT, "handlelength": 1.6, "columnspacing": 1.2}
    ax.legend(loc="upper left", bbox_to_anchor=(0, -0.1), ncol=min(len(series), 8), frameon=False, **legend)


def draw_stat(ax: Axes, panel: dict[str, Any], series: list[Series]) -> None:
    """The last value of each series, mapped and coloured as the panel's field config says."""
    defaults = panel["fieldConfig"]["defaults"]
    mappings = defaults.get("mappings", [])
    value_map = mappings[0]["options"] if mappings else {}
    background = panel["options"]["colorMode"] == "background"
    ax.set_axis_off()
    for n, one in enumerate(series):
        last = next((v for v in reversed(one.values) if not math.isnan(v)), math.nan)
        mapped = value_map.get(f"{last:g}")
        text = mapped["text"] if mapped else format_value(last, defaults.get("unit", "none"))
        color = COLORS[mapped["color"] if mapped else threshold_color(defaults["thresholds"]["steps"], last)]
        bottom, height = 1 - (n + 1) / len(series), 1 / len(series)
        if background:
            ax.add_patch(
                FancyBboxPatch((0, bottom), 1, height, "round,pad=0,rounding_size=0.02", color=color)
            )
        middle = bottom + height / 2
        value_color, name_color = (BACKGROUND, BACKGROUND) if background else (color, MUTED)
        ax.text(
            0.5, middle + 0.1, text, ha="center", va="center", fontsize=19, weight="bold", color=value_color
        )
        ax.text(0.5, middle - 0.28, one.label, ha="center", va="center", fontsize=7, color=name_color)


def threshold_color(steps: list[dict[str, Any]], value: float) -> str:
    color = steps[0]["color"]
    for step in steps[1:]:
        if value >= step["value"]:
            color = step["color"]
    return color


@dataclass(frozen=True)
class Layout:
    """Grafana's 24-column grid on a figure; boxes are given in inches from the top-left corner."""

    rows: int
    width: float = 17.0
    unit_height: float = 0.36
    header: float = 0.75
    margin: float = 0.12
    gap: float = 0.08

    @property
    def height(self) -> float:
        return self.header + self.rows * self.unit_height + self.margin

    def panel(self, grid: dict[str, int]) -> tuple[float, float, float, float]:
        """left, top, width, height of a panel's frame."""
        column = (self.width - 2 * self.margin) / 24
        left = self.margin + grid["x"] * column + self.gap / 2
        top = self.header + grid["y"] * self.unit_height + self.gap / 2
        return left, top, grid["w"] * column - self.gap, grid["h"] * self.unit_height - self.gap

    def box(self, left: float, top: float, width: float, height: float) -> tuple[float, float, float, float]:
        """The box as figure fractions: left, bottom, width, height."""
        return left / self.width, 1 - (top + height) / self.height, width / self.width, height / self.height


def draw_panel(
    fig: Figure, layout: Layout, panel: dict[str, Any], series: list[Series], times: list[datetime]
) -> None:
    """The frame, the title and the info mark, then the stat or the graph inside."""
    left, top, width, height = layout.panel(panel["gridPos"])
    x, y, w, h = layout.box(left, top, width, height)
    frame = FancyBboxPatch((x, y), w, h, "round,pad=0,rounding_size=0.003", transform=fig.transFigure)
    frame.set(facecolor=PANEL, edgecolor=BORDER, lw=0.8, zorder=-1)
    fig.patches.append(frame)
    title_x, title_y, _, _ = layout.box(left + 0.1, top + 0.17, 0, 0)
    fig.text(title_x, title_y, panel["title"], color=TEXT, fontsize=9.5, weight="bold", va="center")
    info_x, _, _, _ = layout.box(left + width - 0.14, 0, 0, 0)
    info = {"boxstyle": "circle,pad=0.2", "facecolor": "none", "edgecolor": MUTED, "lw": 0.7}
    fig.text(info_x, title_y, "i", color=MUTED, fontsize=6, ha="center", va="center", bbox=info)
    if panel["type"] == "stat":
        draw_stat(
            fig.add_axes(layout.box(left + 0.08, top + 0.34, width - 0.16, height - 0.42)), panel, series
        )
    else:
        ax = fig.add_axes(layout.box(left + 0.72, top + 0.36, width - 0.87, height - 0.88))
        draw_timeseries(ax, panel, series, times)


def render(dashboard: dict[str, Any], scrapes: list[Scrape], output: Path, subtitle: str) -> None:
    """Every panel of the dashboard, at its grid position, from the panel's query over the scrapes."""
    layout = Layout(rows=max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dashboard["panels"]))
    fig = plt.figure(figsize=(layout.width, layout.height), facecolor=BACKGROUND)
    times = [datetime.fromtimestamp(scrape.at) for scrape in scrapes]
    where = {"model": loaded_models(scrapes)}
    x, y, _, _ = layout.box(layout.margin, 0.3, 0, 0)
    fig.text(x, y, dashboard["title"], color=TEXT, fontsize=15, weight="bold", va="center")
    x, y, _, _ = layout.box(layout.margin, 0.58, 0, 0)
    fig.text(x, y, subtitle, color=MUTED, fontsize=8.5, va="center")
    for panel in dashboard["panels"]:
        series = PANELS[panel["title"]](scrapes, where)
        if not any(not math.isnan(v) for one in series for v in one.values):
            print(f"WARNING: panel {panel['title']!r} has no data")
        draw_panel(fig, layout, panel, series, times)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=100, facecolor=BACKGROUND)
    plt.close(fig)


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
    port = free_port()
    tally = Tally()
    print(f"server on {HOST}:{port}, log in {SERVER_LOG}")
    with server(port) as process:
        print(f"ready after {wait_ready(process, port):.1f}s; load for {LOAD_SECONDS:g}s")
        scraper = Scraper(port)
        scraper.start()
        meter = CpuMeter(process.pid)
        try:
            run_load(port, tally)
            time.sleep(COOLDOWN_SECONDS)
        finally:
            scraper.stop()
        meter.report()
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
