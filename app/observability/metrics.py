"""Prometheus at /metrics: HTTP figures from prometheus-flask-exporter and the `llm_*` figures.

One registry per app keeps tests that build many apps independent. The service runs one worker by
design, so the in-process registry is the whole truth (no multiprocess directory needed).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, g, request
from prometheus_client import CollectorRegistry
from prometheus_flask_exporter import PrometheusMetrics

from app.observability.llm_metrics import LlmMetrics

# Generation routes, as the `endpoint` label names them (a refusal before the session knows whether
# a /v1 or Ollama request streams is labelled by the route).
GENERATION_ENDPOINTS = {
    "/api/generate": "generate",
    "/api/generate/stream": "generate_stream",
    "/api/chat": "chat",
    "/api/chat/stream": "chat_stream",
    "/api/embed": "embed",
    "/v1/chat/completions": "v1_chat",
    "/v1/completions": "v1_completions",
    "/v1/responses": "v1_responses",
    "/v1/messages": "v1_messages",
    "/v1/embeddings": "v1_embeddings",
    "/ollama/api/chat": "ollama_chat",
    "/ollama/api/generate": "ollama_generate",
    "/ollama/api/embed": "ollama_embed",
    "/ollama/api/embeddings": "ollama_embeddings",
}


def init_app(app: Flask, pool: Any, limiter: Any) -> LlmMetrics:
    registry = CollectorRegistry()
    PrometheusMetrics(
        app,
        registry=registry,
        path="/metrics",
        excluded_paths=["/metrics", "/health/live", "/health/ready"],
    )
    llm_metrics = LlmMetrics(registry, pool, limiter)

    @app.after_request
    def count_refused_before_generation(response):
        """Requests refused before a generation was tracked (bad JSON, validation) count too."""
        endpoint = GENERATION_ENDPOINTS.get(request.path)
        if endpoint and response.status_code >= 400 and not g.get("llm_tracked"):
            outcome = "client_error" if response.status_code < 500 else "server_error"
            key = g.get("api_key")
            llm_metrics.requests.labels("unknown", endpoint, outcome, key.name if key else "").inc()
        return response

    return llm_metrics
