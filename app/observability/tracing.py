"""OpenTelemetry: the Flask request span, a GenAI child span per generation, OTLP export."""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import trace

from app.settings import Settings

logger = logging.getLogger(__name__)
TRACER_NAME = "llm-inference-api"


def init_app(app: Any, settings: Settings) -> None:
    """Instrument the app; export over OTLP/gRPC unless tracing is off.

    A batching exporter with a bounded queue runs off the request path: a collector that is down
    costs dropped spans, never a slower or failed request.
    """
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    if settings.tracing_enabled and not isinstance(trace.get_tracer_provider(), _sdk_provider_type()):
        trace.set_tracer_provider(_provider(settings))
    FlaskInstrumentor().instrument_app(app, excluded_urls="health/live,health/ready,metrics")


def _sdk_provider_type() -> type:
    from opentelemetry.sdk.trace import TracerProvider

    return TracerProvider


def _provider(settings: Settings) -> Any:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from app.engine.offload import gevent_active

    if gevent_active():
        # grpc's C core must cooperate with gevent, or an export would block the event loop
        from grpc.experimental import gevent as grpc_gevent

        grpc_gevent.init_gevent()
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: settings.service_name}))
    exporter = OTLPSpanExporter(
        endpoint=settings.otlp_endpoint,
        insecure=settings.otlp_endpoint.startswith("http://"),
        timeout=5,
    )
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=2048, export_timeout_millis=5000))
    logger.info("tracing: OTLP/gRPC to %s as %s", settings.otlp_endpoint, settings.service_name)
    return provider


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def start_generation_span(operation: str, model: str, sampling: Any) -> trace.Span:
    """A child of the request span with the GenAI semantic-convention request attributes."""
    span = tracer().start_span(
        f"{operation} {model}",
        kind=trace.SpanKind.INTERNAL,
        attributes={
            "gen_ai.operation.name": operation,
            "gen_ai.system": "mistral.rs",
            "gen_ai.request.model": model,
            "gen_ai.request.max_tokens": sampling.max_tokens,
            "gen_ai.request.temperature": sampling.temperature,
            "gen_ai.request.top_p": sampling.top_p,
        },
    )
    if sampling.top_k is not None:
        span.set_attribute("gen_ai.request.top_k", sampling.top_k)
    return span
