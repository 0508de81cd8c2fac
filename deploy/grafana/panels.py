"""The dashboard's panels as queries over the scrapes: the same queries as llm-inference-api.json, by
panel title."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from deploy.grafana.promql import Scrape, gauge, quantile, rate


@dataclass
class Series:
    """One line of a panel, aligned with the scrape times; NaN where the query has no value."""

    label: str
    values: list[float]


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
