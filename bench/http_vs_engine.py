"""Benchmark: streaming decode speed and time to first token over HTTP versus the in-process engine."""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RUST_LOG", "warn")  # the engine logs its load to stdout; keep the table readable

from app.engine import GenerationRequest, LoadedModel, ModelPool, Sampling, open_stream  # noqa: E402
from app.settings import Settings  # noqa: E402
from bench import machine, processes  # noqa: E402
from bench.cpu import CpuMeter, CpuUse  # noqa: E402
from bench.processes import HOST, MODEL  # noqa: E402
from bench.sse_client import Stream, stream  # noqa: E402
from bench.stats import spread  # noqa: E402

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
    cpu_s: dict[str, float] | None = None  # CPU seconds spent during the run, by whom (see bench.cpu)

    @classmethod
    def of(cls, side: str, timed: Stream) -> Run:
        return cls(
            side, timed.ttft_ms, timed.decode_tok_s, timed.completion_tokens, timed.prompt_tokens, timed.text
        )


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
    engine_stream = open_stream(model, request)
    for chunk in engine_stream:
        if chunk.text:
            last = time.perf_counter()
            first = first or last
            parts.append(chunk.text)
    ended = time.perf_counter()
    usage = engine_stream.usage
    if usage is None:
        raise RuntimeError("the engine stream ended without usage")
    timed = Stream(started, first, last, ended, usage.completion_tokens, usage.prompt_tokens, "".join(parts))
    return Run.of("in-process", timed)


# -- HTTP ----------------------------------------------------------------------------------------
def run_http(port: int, max_tokens: int) -> Run:
    """POST /api/chat/stream; TTFT from sending the request to the first `token` frame."""
    body = {"messages": list(MESSAGES), "max_tokens": max_tokens, "temperature": 0.0}
    timed = stream(port, "/api/chat/stream", body, REQUEST_TIMEOUT_SECONDS)
    if timed.done is None:
        raise RuntimeError("the stream ended without a `done` event")
    timings = timed.done["timings"]
    return replace(
        Run.of("HTTP", timed),
        server_ttft_ms=timings["time_to_first_token_seconds"] * 1e3,
        server_decode_tok_s=timings["completion_tokens_per_second"],
    )


# -- the run -------------------------------------------------------------------------------------
def measured(run: Callable[[], Run], meter: CpuMeter) -> Run:
    result, used = meter.measure(run)
    return replace(result, cpu_s=asdict(used))


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
    return CpuUse(**run.cpu_s).outside if run.cpu_s else 0.0


def summarise(runs: list[Run]) -> dict[str, Any]:
    summary: dict[str, Any] = {
        **spread("ttft_ms", (r.ttft_ms for r in runs)),
        **spread("decode_tok_s", (r.decode_tok_s for r in runs)),
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
    with processes.ours(log_path) as server:
        ready_seconds = server.wait_ready("/health/ready", READY_DEADLINE_SECONDS)
        print(f"server ready in {ready_seconds:.1f}s on {HOST}:{server.port} (log: {log_path})")
        model = load_engine()
        config = model.config.as_dict()
        print(f"in-process engine: ISQ {config['in_situ_quant']}, max_seqs {config['max_seqs']}")
        sides = {
            "in-process": lambda: run_engine(model, args.max_tokens),
            "HTTP": lambda: run_http(server.port, args.max_tokens),
        }
        meter = CpuMeter()
        meter.watch(server.process.pid)
        return interleave(sides, args.rounds, meter), config


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
        "machine": machine.describe(),
        "engine_config": config,
        **verdict,
        "warnings": found,
        "runs": [{k: v for k, v in asdict(r).items() if k != "text"} for side in runs.values() for r in side],
    }
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {args.json}")


if __name__ == "__main__":
    main()
