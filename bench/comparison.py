"""The figures of the comparison with llama.cpp: medians and percentiles over the rounds, the ratios
ours / llama.cpp, the printed table, the chart's panels and the warnings."""

from __future__ import annotations

import argparse
import math
import statistics
from typing import Any, NamedTuple

from bench.chart import Bars, Lines
from bench.side_by_side import CONCURRENCY_LEVELS, SideRuns
from bench.stats import percentile

NOISE_CPU_SECONDS = 0.5  # outside CPU seconds during one measured block above which it is repeated
THROUGHPUT = "throughput (tok/s, higher is better)"
FIRST_TOKEN = "first token, one request (ms, lower is better)"
LOAD_FIRST_TOKEN = "N streams: first token (ms, lower is better)"
LOAD_LATENCY = "N streams: latency (s, lower is better)"
LOAD_WAIT = "N streams: longest wait / one answer (lower is better)"


class Metric(NamedTuple):
    key: str
    label: str
    unit: str
    higher_is_better: bool
    panel: str  # the chart panel it is drawn in


METRICS = (
    Metric("completion_tok_s", "completion (non-stream)", "tok/s", True, THROUGHPUT),
    Metric("decode_tok_s", "streaming decode", "tok/s", True, THROUGHPUT),
    Metric("ttft_short_ms", "first token, short prompt", "ms", False, FIRST_TOKEN),
    Metric("ttft_long_ms", "first token, long prompt", "ms", False, FIRST_TOKEN),
    *(
        metric
        for n in CONCURRENCY_LEVELS
        for metric in (
            Metric(f"aggregate_tok_s_{n}", f"{n} streams: aggregate", "tok/s", True, THROUGHPUT),
            Metric(f"p50_ttft_ms_{n}", f"{n} streams: p50 first token", "ms", False, LOAD_FIRST_TOKEN),
            Metric(f"p95_ttft_ms_{n}", f"{n} streams: p95 first token", "ms", False, LOAD_FIRST_TOKEN),
            Metric(f"p50_latency_s_{n}", f"{n} streams: p50 latency", "s", False, LOAD_LATENCY),
            Metric(f"p95_latency_s_{n}", f"{n} streams: p95 latency", "s", False, LOAD_LATENCY),
            Metric(f"longest_wait_answers_{n}", f"{n} streams: longest wait", "ans.", False, LOAD_WAIT),
        )
    ),
)


def summarise(runs: SideRuns) -> dict[str, float]:
    """Medians over rounds; percentiles pooled over every stream of every round."""
    summary = {
        "completion_tok_s": statistics.median(runs.completion_tok_s),
        "decode_tok_s": statistics.median(runs.decode_tok_s),
        "stream_latency_s": statistics.median(runs.stream_latency_s),
        "ttft_short_ms": statistics.median(runs.ttft_short_ms),
        "ttft_long_ms": statistics.median(runs.ttft_long_ms),
    }
    for n, level in runs.concurrency.items():
        summary[f"aggregate_tok_s_{n}"] = statistics.median(level["aggregate_tok_s"])
        summary[f"p50_ttft_ms_{n}"] = percentile(level["ttft_ms"], 0.50)
        summary[f"p95_ttft_ms_{n}"] = percentile(level["ttft_ms"], 0.95)
        summary[f"p50_latency_s_{n}"] = percentile(level["latency_s"], 0.50)
        summary[f"p95_latency_s_{n}"] = percentile(level["latency_s"], 0.95)
        longest_s = statistics.median(level["longest_ttft_ms"]) / 1e3
        summary[f"longest_wait_answers_{n}"] = longest_s / summary["stream_latency_s"]
    return summary


def ratios(ours: dict[str, float], llama: dict[str, float]) -> dict[str, float]:
    return {m.key: ours[m.key] / llama[m.key] for m in METRICS if llama.get(m.key) and m.key in ours}


def print_table(ours: dict[str, float], llama: dict[str, float], ratio: dict[str, float]) -> None:
    print()
    header = f"{'metric':<36}{'unit':>6}{'ours':>10}{'llama.cpp':>11}{'ours/llama':>12}  better"
    print(header)
    print("-" * len(header))
    for key, label, unit, higher, _ in METRICS:
        digits = 1 if unit in ("tok/s", "ms") else 2
        better = "higher" if higher else "lower"
        print(
            f"{label:<36}{unit:>6}{ours[key]:>10.{digits}f}{llama[key]:>11.{digits}f}"
            f"{ratio.get(key, math.nan):>12.2f}  {better}"
        )
    print("ratios are ours / llama.cpp: for tok/s above 1 means we are faster; for times above 1, slower")
    print(
        "longest wait: a burst's longest first-token wait / the median latency of one stream alone, same "
        "length (how many whole answers the unluckiest request waited for)"
    )


def chart_panels(summary: dict[str, dict[str, float]], turns: dict[str, Any] | None) -> list[Bars | Lines]:
    """The chart: a panel of bars per kind of figure (those in the results), then the multi-turn chat."""
    present = [m for m in METRICS if all(m.key in side for side in summary.values())]
    titles = list(dict.fromkeys(m.panel for m in present))
    panels: list[Bars | Lines] = [
        Bars(title, [(m.key, m.label) for m in present if m.panel == title]) for title in titles
    ]
    if turns:
        medians = turns["ttft_ms_median"]
        on, off = (medians[name][-1] for name in ("prefix cache on", "prefix cache off"))
        title = f"ours, 5-turn chat: first token (ms); turn 5 off/on {off / on:.1f}x"
        panels.append(Lines(title, "chat turn (whole history sent)", medians))
    return panels


def token_warnings(runs: dict[str, SideRuns], args: argparse.Namespace) -> list[str]:
    """Runs that stopped short of the requested tokens, and rounds with outside CPU load."""
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
