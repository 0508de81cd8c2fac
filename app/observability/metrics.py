"""Prometheus metrics at /metrics (HTTP request counters and latency histograms)."""

from __future__ import annotations

from flask import Flask
from prometheus_client import CollectorRegistry
from prometheus_flask_exporter import PrometheusMetrics


def init_app(app: Flask) -> PrometheusMetrics:
    # A registry per app keeps tests that build many apps independent.
    metrics = PrometheusMetrics(app, registry=CollectorRegistry(), path="/metrics")
    app.extensions["metrics"] = metrics
    return metrics
