"""The LLM figures for Prometheus, all named `llm_*` and labelled by model (and endpoint)."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from app import __version__

# Buckets wide enough for a 2-core CPU (seconds per token, tens of seconds per request) and narrow
# enough for a GPU (milliseconds).
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
TPOT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28)
E2E_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320, 640)
QUEUE_BUCKETS = (0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

OUTCOMES = ("success", "client_error", "server_error", "cancelled", "rejected", "timeout", "shutdown")


class LlmMetrics:
    """Counters, histograms and gauges of generation; model state is read from the pool at scrape."""

    def __init__(self, registry: CollectorRegistry, pool: Any, limiter: Any) -> None:
        self.registry = registry
        self.requests = Counter(
            "llm_requests",
            "Generation requests by outcome (" + ", ".join(OUTCOMES) + ")",
            ["model", "endpoint", "outcome", "key"],
            registry=registry,
        )
        self.prompt_tokens = Counter(
            "llm_prompt_tokens", "Prompt tokens processed", ["model", "key"], registry=registry
        )
        self.completion_tokens = Counter(
            "llm_completion_tokens", "Completion tokens generated", ["model", "key"], registry=registry
        )
        self.time_to_first_token = Histogram(
            "llm_time_to_first_token_seconds",
            "From submission to the engine to the first token",
            ["model"],
            buckets=TTFT_BUCKETS,
            registry=registry,
        )
        self.time_per_output_token = Histogram(
            "llm_time_per_output_token_seconds",
            "Mean time between output tokens of one request (inter-token latency)",
            ["model"],
            buckets=TPOT_BUCKETS,
            registry=registry,
        )
        self.request_duration = Histogram(
            "llm_request_duration_seconds",
            "End-to-end time of successful generations, from arrival to the last token",
            ["model", "endpoint"],
            buckets=E2E_BUCKETS,
            registry=registry,
        )
        self.queue_wait = Histogram(
            "llm_queue_wait_seconds",
            "Wait for a generation slot",
            ["endpoint"],
            buckets=QUEUE_BUCKETS,
            registry=registry,
        )
        self.prefill_gate_wait = Histogram(
            "llm_prefill_gate_wait_seconds",
            "Wait at the runner's prefill gate (one prompt in prefill at a time, CPU), after the slot",
            ["endpoint"],
            buckets=QUEUE_BUCKETS,
            registry=registry,
        )
        running = Gauge("llm_requests_running", "Generations holding a slot", registry=registry)
        running.set_function(lambda: limiter.in_use)
        waiting = Gauge("llm_requests_waiting", "Requests waiting for a slot", registry=registry)
        waiting.set_function(lambda: limiter.waiting)
        limit = Gauge("llm_max_concurrent_requests", "The concurrency limit (slots)", registry=registry)
        limit.set(limiter.limit)
        registry.register(_ModelCollector(pool))

    def observe(
        self,
        *,
        model: str,
        endpoint: str,
        outcome: str,
        duration: float,
        key: str = "",
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        time_to_first_token: float | None = None,
        decode_seconds: float | None = None,
    ) -> None:
        """Record one finished request."""
        self.requests.labels(model, endpoint, outcome, key).inc()
        if outcome == "success":  # refusals and cancellations would blur generation time
            self.request_duration.labels(model, endpoint).observe(duration)
        if prompt_tokens:
            self.prompt_tokens.labels(model, key).inc(prompt_tokens)
        if completion_tokens:
            self.completion_tokens.labels(model, key).inc(completion_tokens)
        if time_to_first_token is not None:
            self.time_to_first_token.labels(model).observe(time_to_first_token)
        if decode_seconds is not None and completion_tokens > 1:
            self.time_per_output_token.labels(model).observe(decode_seconds / (completion_tokens - 1))


class _ModelCollector(Collector):
    """Model state, load time and the build, read from the pool when Prometheus scrapes."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    def collect(self) -> Iterable[Any]:
        loaded = GaugeMetricFamily("llm_model_loaded", "1 when the model is in memory", labels=["model"])
        load = GaugeMetricFamily(
            "llm_model_load_duration_seconds", "How long the last load took", labels=["model"]
        )
        loads = CounterMetricFamily("llm_model_loads", "Loads since start", labels=["model"])
        unloads = CounterMetricFamily(
            "llm_model_unloads",
            "Unloads: to stay within LLM_MAX_LOADED_MODELS, or asked for (admin, keep_alive 0)",
            labels=["model"],
        )
        cache = _PrefixCacheFamilies()
        for model in self._pool.describe():
            cache.add(model["id"], model.get("prefix_cache"))
            loaded.add_metric([model["id"]], 1.0 if model["state"] == "loaded" else 0.0)
            if model["load_seconds"] is not None:
                load.add_metric([model["id"]], model["load_seconds"])
            loads.add_metric([model["id"]], model["loads"])
            unloads.add_metric([model["id"]], model["unloads"])
        info = InfoMetricFamily("llm_build", "Versions and device")
        info.add_metric(
            [],
            {
                "version": __version__,
                "mistralrs": _version("mistralrs", "unknown"),
                "device": self._pool.device,
            },
        )
        yield from (loaded, load, loads, unloads, info, *cache.families)


class _PrefixCacheFamilies:
    """The server's account of each model's prefix cache on CPU (app.engine.prefix_cache)."""

    def __init__(self) -> None:
        labels = ["model"]
        self.size = GaugeMetricFamily(
            "llm_prefix_cache_bytes", "Estimated KV bytes the engine's prefix cache holds", labels=labels
        )
        self.budget = GaugeMetricFamily(
            "llm_prefix_cache_budget_bytes", "Trimmed past this (LLM_PREFIX_CACHE_MB)", labels=labels
        )
        self.entries = GaugeMetricFamily(
            "llm_prefix_cache_entries", "Finished sequences held since the last trim", labels=labels
        )
        self.counters = {
            name: CounterMetricFamily(f"llm_prefix_cache_{name}", text, labels=labels)
            for name, text in (
                ("hits", "Requests whose leading messages the cache held"),
                ("misses", "Requests with no cached leading messages"),
                ("trims", "Times the cache was emptied to stay within its budget"),
                ("trim_failures", "Trims that did not empty the cache"),
                ("rewarms", "Hot prefixes warmed again after a trim"),
            )
        }

    def add(self, model: str, state: dict | None) -> None:
        if state is None:
            return
        self.size.add_metric([model], state["estimated_mb"] * 1024 * 1024)
        self.budget.add_metric([model], state["budget_mb"] * 1024 * 1024)
        self.entries.add_metric([model], state["entries"])
        for name, family in self.counters.items():
            family.add_metric([model], state[name])

    @property
    def families(self) -> list[Any]:
        return [self.size, self.budget, self.entries, *self.counters.values()]


def _version(package: str, default: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return default
