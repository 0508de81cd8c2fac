"""LLM inference API: create_app() wires settings, engine, observability, errors and blueprints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

    from app.api.drain import Drain
    from app.api.tenancy import TokenQuotas
    from app.engine import ModelPool, SlotLimiter
    from app.observability.llm_metrics import LlmMetrics
    from app.settings import Settings
    from app.store.service import Store

__version__ = "1.0.0"
MAX_REQUEST_BYTES = 8 * 1024 * 1024


@dataclass
class LlmServices:
    """What the views need, kept in app.extensions["llm"]."""

    settings: Settings
    pool: ModelPool
    limiter: SlotLimiter
    metrics: LlmMetrics
    sessions: set  # generations in flight (GenerationSession), for the drain
    drain: Drain
    quotas: TokenQuotas
    store: Store


def create_app(settings: Settings | None = None, pool: Any = None) -> Flask:
    """Build the application. Nothing here loads a model: `pool.start()` does, in the worker.

    Imports are local so that the gunicorn master, which reads settings, imports no engine code.
    """
    from flask import Flask
    from flask_cors import CORS

    from app import api, errors
    from app.api import auth, tenancy
    from app.api.drain import Drain
    from app.api.openai.schemas import MAX_CHOICES
    from app.api.tenancy import TokenQuotas
    from app.engine import ModelPool, SlotLimiter
    from app.engine.offload import size_threadpool
    from app.observability import logging as log_setup
    from app.observability import metrics, request_id, tracing
    from app.settings import Settings
    from app.store.service import Store

    settings = settings or Settings.from_env()
    log_setup.configure(settings)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    pool = pool if pool is not None else ModelPool(settings)
    limiter = SlotLimiter(
        settings.max_concurrent_requests, settings.queue_timeout_seconds, settings.max_queued_requests
    )
    # a pump thread per choice of every slot's request, plus room for loading and tokenising
    size_threadpool(settings.max_concurrent_requests * MAX_CHOICES + 4)
    request_id.init_app(app)
    tracing.init_app(app, settings)  # before the keys: a 401 or 403 is traced too
    auth.init_app(app, settings)  # after the request id: a 401 carries it too
    CORS(
        app,
        origins=list(settings.cors_allowed_origins),
        expose_headers=[
            "X-Request-ID",
            "Retry-After",
            "X-RateLimit-Limit-Tokens",
            "X-RateLimit-Remaining-Tokens",
            "X-RateLimit-Reset-Tokens",
        ],
    )
    sessions: set = set()
    app.extensions["llm"] = LlmServices(
        settings,
        pool,
        limiter,
        metrics.init_app(app, pool, limiter),
        sessions,
        Drain(settings.drain_seconds, sessions),
        TokenQuotas(settings.rate_window_seconds),
        Store.open(settings.store, settings.max_concurrent_requests),
    )
    from app.observability.store_metrics import StoreCollector

    services = app.extensions["llm"]
    services.metrics.registry.register(StoreCollector(services.store, limiter))
    tenancy.init_app(app, services.quotas)
    if settings.trusted_proxies:
        from app.proxies import TrustedProxies

        app.wsgi_app = TrustedProxies(app.wsgi_app, settings.trusted_proxies)
    api.init_app(app, settings)
    errors.register_error_handlers(app)
    return app
