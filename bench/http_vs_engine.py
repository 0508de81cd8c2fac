"""Benchmark: streaming decode speed and time to first token over HTTP versus the in-process engine."""

from __future__ import annotations

import argparse
import http.client
import importlib.metadata
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RUST_LOG", "warn")  # the engine logs its load to stdout; keep the table readable

from app.api import sse  # noqa: E402
from app.engine import GenerationRequest, LoadedModel, ModelPool, Sampling, open_stream  # noqa: E402
from app.settings import Settings  # noqa: E402
from bench import processes  # noqa: E402
from bench.processes import free_port  # noqa: E402

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
HOST = "127.0.0.1"  # loopback only
# 37 prompt tokens once templated; at temperature 0 the story runs well past 128 tokens.
MESSAGES = (
    {"role": "system", "content": "You are a helpful writing assistant."},
    {"role": "user", "content": "Write a long story about a sailor who finds a map to a hidden island."},
)
WARMUP_RUNS = 2
SETTLE_SECONDS = 0.3  # lets the engine threads of the side that just ran go idle
READY_DEADLINE_SECONDS = 120.0
REQUEST_TIMEOUT_SECONDS = 120.0
NOISE_CPU_SECONDS = 0.25  # CPU time of other processes during one run above which it is flagged
DECODE_RATIO_GOAL = 0.97
TTFT_OVERHEAD_GOAL_MS = 15.0
DEFAULT_JSON = ROOT / "bench" / "results" / "http_vs_engine.json"


@dataclass(frozen=True)
class Run:
    """One streamed generation, timed by its consumer."""

    side: str
    ttft_ms: float
    decode_tok_s: float
    completion_tokens: int
    prompt_tokens: int
    text: str
    server_ttft_ms: float | None = None  # HTTP only: the server's own figures from the `done` event
    server_decode_tok_s: float | None = None
    cpu_s: dict[str, float] | None = None  # CPU seconds spent during the run, by whom (see CpuMeter)


def decode_rate(tokens: int, first: float, last: float) -> float:
    """Tokens per second after the first one: (tokens - 1) / (t_last - t_first)."""
    return (tokens - 1) / (last - first) if tokens > 1 and last > first else 0.0


class CpuMeter:
    """CPU seconds used by this process, by the server's processes and by everything else (from /proc).

    Shows that the side not being measured stays idle, and flags outside load on a shared machine.
    """

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid

    @staticmethod
    def _process_ticks(pid: int) -> int:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            return 0
        return int(fields[11]) + int(fields[12])  # utime + stime, all threads

    def _server_pids(self) -> list[int]:
        path = Path(f"/proc/{self.server_pid}/task/{self.server_pid}/children")
        children = path.read_text().split() if path.exists() else []
        return [self.server_pid, *map(int, children)]

    def sample(self) -> dict[str, int]:
        cpu = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, cpu[:8])
        return {
            "bench": self._process_ticks(os.getpid()),
            "server": sum(map(self._process_ticks, self._server_pids())),
            "all": user + nice + system + irq + softirq,
            "steal": steal,
        }

    def seconds(self, before: dict[str, int], after: dict[str, int]) -> dict[str, float]:
        delta = {key: (after[key] - before[key]) / self.TICK for key in before}
        delta["other"] = max(0.0, delta.pop("all") - delta["bench"] - delta["server"])
        return delta


# -- in-process ----------------------------------------------------------------------------------
def load_engine() -> LoadedModel:
    """The project's own pool and settings, configured as the server configures them."""
    pool = ModelPool(Settings.from_env({"LLM_ALLOWED_MODELS": MODEL}))
    pool.load_all()
    return pool.acquire(MODEL)


def run_engine(model: LoadedModel, max_tokens: int) -> Run:
    """Submit and iterate; first/last are the chunks with text (what the server sends as `token`)."""
    sampling = Sampling(max_tokens=max_tokens, temperature=0.0, top_p=1.0)
    request = GenerationRequest(model=MODEL, sampling=sampling, messages=MESSAGES)
    parts: list[str] = []
    first = last = 0.0
    started = time.perf_counter()
    stream = open_stream(model, request)
    for chunk in stream:
        if chunk.text:
            last = time.perf_counter()
            first = first or last
            parts.append(chunk.text)
    usage = stream.usage
    if usage is None:
        raise RuntimeError("the engine stream ended without usage")
    return Run(
        side="in-process",
        ttft_ms=(first - started) * 1e3,
        decode_tok_s=decode_rate(usage.completion_tokens, first, last),
        completion_tokens=usage.completion_tokens,
        prompt_tokens=usage.prompt_tokens,
        text="".join(parts),
    )


# -- HTTP ----------------------------------------------------------------------------------------


@contextmanager
def server(port: int, log_path: Path) -> Iterator[subprocess.Popen]:
    """The real server (`gunicorn -c gunicorn.conf.py wsgi:app`) on loopback; always stopped."""
    env = {
        **os.environ,
        "LLM_ALLOWED_MODELS": MODEL,
        "LLM_INFERENCE_HOSTNAME": HOST,
        "LLM_INFERENCE_PORT": str(port),
        "LOG_FORMAT": "pretty",
    }
    with processes.gunicorn(env, log_path) as process:
        yield process


def wait_ready(process: subprocess.Popen, port: int, log_path: Path) -> float:
    """Poll GET /health/ready until 200; return the seconds it took."""
    return processes.wait_ready(process, port, "/health/ready", log_path, READY_DEADLINE_SECONDS)


def sse_frames(response: http.client.HTTPResponse) -> Iterator[tuple[str, Any]]:
    """(event, data) per frame as soon as its blank line arrives, via the project's SSE parser."""
    lines: list[str] = []
    while line := response.readline():
        text = line.decode("utf-8").rstrip("\r\n")
        if text:
            lines.append(text)
        elif lines:
            yield sse.parse("\n".join(lines))[0]
            lines = []


def run_http(port: int, max_tokens: int) -> Run:
    """POST /api/chat/stream; TTFT from sending the request to the first `token` frame."""
    body = json.dumps({"messages": list(MESSAGES), "max_tokens": max_tokens, "temperature": 0.0})
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    connection = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT_SECONDS)
    parts: list[str] = []
    first = last = 0.0
    done: dict[str, Any] | None = None
    try:
        connection.connect()
        started = time.perf_counter()
        connection.request("POST", "/api/chat/stream", body=body.encode(), headers=headers)
        response = connection.getresponse()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {response.read(2000).decode(errors='replace')}")
        for event, data in sse_frames(response):
            if event == "token":
                last = time.perf_counter()
                first = first or last
                parts.append(data["delta"])
            elif event == "done":
                done = data
                break
            else:
                raise RuntimeError(f"unexpected {event!r} event: {data}")
    finally:
        connection.close()
    if done is None:
        raise RuntimeError("the stream ended without a `done` event")
    usage, timings = done["usage"], done["timings"]
    return Run(
        side="HTTP",
        ttft_ms=(first - started) * 1e3,
        decode_tok_s=decode_rate(usage["completion_tokens"], first, last),
        completion_tokens=usage["completion_tokens"],
        prompt_tokens=usage["prompt_tokens"],
        text="".join(parts),
        server_ttft_ms=timings["time_to_first_token_seconds"] * 1e3,
        server_decode_tok_s=timings["completion_tokens_per_second"],
    )


# -- the run -------------------------------------------------------------------------------------
def measured(run: Callable[[], Run], meter: CpuMeter) -> Run:
    before = meter.sample()
    result = run()
    return replace(result, cpu_s=meter.seconds(before, meter.sample()))


def describe(run: Run) -> str:
    cpu = run.cpu_s or {}
    return (
        f"TTFT {run.ttft_ms:7.1f} ms, {run.decode_tok_s:6.2f} tok/s, {run.completion_tokens} tokens; "
        + "CPU s "
        + " ".join(f"{who} {seconds:.2f}" for who, seconds in cpu.items())
    )


def interleave(sides: dict[str, Callable[[], Run]], rounds: int, meter: CpuMeter) -> dict[str, list[Run]]:
    """Warm each side up, then one run of each per round, alternating which goes first."""
    for name, run in sides.items():
        for _ in range(WARMUP_RUNS):
            run()
            time.sleep(SETTLE_SECONDS)
        print(f"warmed up: {name}")
    runs: dict[str, list[Run]] = {name: [] for name in sides}
    order = list(sides)
    for index in range(rounds):
        for name in order if index % 2 == 0 else order[::-1]:
            result = measured(sides[name], meter)
            runs[name].append(result)
            print(f"round {index + 1}/{rounds} {name:>10}: {describe(result)}")
            time.sleep(SETTLE_SECONDS)
    return runs


def outside_cpu(run: Run) -> float:
    """CPU seconds taken by other processes (or the hypervisor) during the run: noise."""
    cpu = run.cpu_s or {}
    return cpu.get("other", 0.0) + cpu.get("steal", 0.0)


def summarise(runs: list[Run]) -> dict[str, Any]:
    ttft, decode = [r.ttft_ms for r in runs], [r.decode_tok_s for r in runs]
    summary: dict[str, Any] = {
        "ttft_ms_median": statistics.median(ttft),
        "ttft_ms_min": min(ttft),
        "ttft_ms_max": max(ttft),
        "decode_tok_s_median": statistics.median(decode),
        "decode_tok_s_min": min(decode),
        "decode_tok_s_max": max(decode),
        "completion_tokens": sorted({r.completion_tokens for r in runs}),
        "prompt_tokens": sorted({r.prompt_tokens for r in runs}),
        "outside_cpu_s_max": max(map(outside_cpu, runs)),
    }
    if runs[0].server_ttft_ms is not None:
        summary["server_ttft_ms_median"] = statistics.median(r.server_ttft_ms or 0.0 for r in runs)
        summary["server_decode_tok_s_median"] = statistics.median(r.server_decode_tok_s or 0.0 for r in runs)
    return summary


def compare(engine_runs: list[Run], http_runs: list[Run]) -> dict[str, Any]:
    """The two goals on the medians, plus the median of the per-round ratios (robust to drift)."""
    engine, http = summarise(engine_runs), summarise(http_runs)
    ratio = http["decode_tok_s_median"] / engine["decode_tok_s_median"]
    overhead = http["ttft_ms_median"] - engine["ttft_ms_median"]
    pairs = list(zip(engine_runs, http_runs, strict=True))
    # client-seen TTFT minus the server's own figure: the HTTP layer alone, free of prefill noise
    http_layer = [h.ttft_ms - (h.server_ttft_ms or 0.0) for h in http_runs]
    return {
        "in_process": engine,
        "http": http,
        "decode_ratio_http_over_engine": ratio,
        "decode_ratio_paired_median": statistics.median(h.decode_tok_s / e.decode_tok_s for e, h in pairs),
        "decode_ratio_goal": DECODE_RATIO_GOAL,
        "decode_ratio_met": ratio >= DECODE_RATIO_GOAL,
        "ttft_overhead_ms": overhead,
        "ttft_overhead_goal_ms": TTFT_OVERHEAD_GOAL_MS,
        "ttft_overhead_met": overhead < TTFT_OVERHEAD_GOAL_MS,
        "ttft_overhead_paired_median_ms": statistics.median(h.ttft_ms - e.ttft_ms for e, h in pairs),
        "ttft_http_layer_median_ms": statistics.median(http_layer),
    }


def print_table(verdict: dict[str, Any]) -> None:
    engine, http = verdict["in_process"], verdict["http"]
    met = {True: "met", False: "NOT met"}
    print()
    print(f"{'side':<12}{'TTFT ms (median)':>18}{'decode tok/s (median)':>24}{'completion tokens':>20}")
    for name, s in (("in-process", engine), ("HTTP", http)):
        tokens = ",".join(map(str, s["completion_tokens"]))
        print(f"{name:<12}{s['ttft_ms_median']:>18.1f}{s['decode_tok_s_median']:>24.2f}{tokens:>20}")
    print(
        f"server-side figures of the HTTP runs: TTFT {http['server_ttft_ms_median']:.1f} ms, "
        f"{http['server_decode_tok_s_median']:.2f} tok/s"
    )
    print(
        f"decode ratio HTTP / in-process: {verdict['decode_ratio_http_over_engine']:.3f} "
        f"(per-round median {verdict['decode_ratio_paired_median']:.3f}; "
        f"goal >= {DECODE_RATIO_GOAL}: {met[verdict['decode_ratio_met']]})"
    )
    print(
        f"TTFT overhead HTTP - in-process: {verdict['ttft_overhead_ms']:+.2f} ms "
        f"(per-round median {verdict['ttft_overhead_paired_median_ms']:+.1f} ms; "
        f"goal < {TTFT_OVERHEAD_GOAL_MS:g} ms: {met[verdict['ttft_overhead_met']]})"
    )
    print(
        f"of which the HTTP layer (client TTFT - server-reported TTFT): "
        f"{verdict['ttft_http_layer_median_ms']:.1f} ms"
    )


def warnings(runs: list[Run], max_tokens: int) -> list[str]:
    found = []
    if len({r.text for r in runs}) != 1:
        found.append("the runs did not all produce the same text (expected at temperature 0)")
    if any(r.completion_tokens < max_tokens for r in runs):
        found.append(f"some runs stopped before {max_tokens} tokens (EOS): decode spans differ")
    noisy = [r for r in runs if outside_cpu(r) > NOISE_CPU_SECONDS]
    if noisy:
        found.append(
            f"{len(noisy)} runs had outside CPU load > {NOISE_CPU_SECONDS:g}s: rerun on a quiet machine"
        )
    return found


def machine() -> dict[str, Any]:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")
    return {
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "mistralrs": importlib.metadata.version("mistralrs"),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds (one run per side each)")
    parser.add_argument("--max-tokens", type=int, default=128, help="tokens to generate per run")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write the results")
    args = parser.parse_args()
    if args.rounds < 1 or args.max_tokens < 2:
        parser.error("--rounds must be >= 1 and --max-tokens >= 2")
    return args


def measure(args: argparse.Namespace, log_path: Path) -> tuple[dict[str, list[Run]], dict[str, Any]]:
    """Start the server, load the in-process engine, run both sides; the server is always stopped."""
    port = free_port()
    with server(port, log_path) as process:
        ready_seconds = wait_ready(process, port, log_path)
        print(f"server ready in {ready_seconds:.1f}s on {HOST}:{port} (log: {log_path})")
        model = load_engine()
        config = model.config.as_dict()
        print(f"in-process engine: ISQ {config['in_situ_quant']}, max_seqs {config['max_seqs']}")
        sides = {
            "in-process": lambda: run_engine(model, args.max_tokens),
            "HTTP": lambda: run_http(port, args.max_tokens),
        }
        return interleave(sides, args.rounds, CpuMeter(process.pid)), config


def main() -> None:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the `finally` that stops the server
    args.json.parent.mkdir(parents=True, exist_ok=True)
    runs, config = measure(args, args.json.with_suffix(".server.log"))
    verdict = compare(runs["in-process"], runs["HTTP"])
    print_table(verdict)
    found = warnings(runs["in-process"] + runs["HTTP"], args.max_tokens)
    for warning in found:
        print(f"warning: {warning}")
    results = {
        "model": MODEL,
        "messages": list(MESSAGES),
        "max_tokens": args.max_tokens,
        "rounds": args.rounds,
        "warmup_runs": WARMUP_RUNS,
        "machine": machine(),
        "engine_config": config,
        **verdict,
        "warnings": found,
        "runs": [{k: v for k, v in asdict(r).items() if k != "text"} for side in runs.values() for r in side],
    }
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {args.json}")


if __name__ == "__main__":
    main()
