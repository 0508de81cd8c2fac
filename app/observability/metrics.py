"""Prometheus at /metrics: HTTP figures from prometheus-flask-exporter and the `llm_*` figures.

One registry per app keeps tests that build many apps independent. The service runs one worker by
design, so the in-process registry is the whole truth (no multiprocess directory needed).
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from prometheus_client import CollectorRegistry
from prometheus_flask_exporter import PrometheusMetrics

from app.observability.llm_metrics import LlmMetrics


def init_app(app: Flask, pool: Any, limiter: Any) -> LlmMetrics:
    registry = CollectorRegistry()
    PrometheusMetrics(
        app,
        registry=registry,
        path="/metrics",
        excluded_paths=["/metrics", "/health/live", "/health/ready"],
    )
    return LlmMetrics(registry, pool, limiter)
