"""API keys on every route but the probes: `Authorization: Bearer KEY` or `X-API-Key: KEY`.

With no key configured the server is open (said once at start). `/metrics` and the API documentation
are public unless LLM_METRICS_PUBLIC / LLM_DOCS_PUBLIC say otherwise. The key that matched is
`g.api_key`; only its name ever reaches a log line, a metric or a span.
"""

from __future__ import annotations

import ipaddress
import logging

from flask import Flask, g, request

from app.errors import UnauthorizedError
from app.keys_file import find
from app.settings import Settings

logger = logging.getLogger(__name__)

PROBES = ("/health/live", "/health/ready")
DOCS = ("/openapi.json", "/swagger-ui")
CHALLENGE = {"WWW-Authenticate": "Bearer"}


def _public(path: str, settings: Settings) -> bool:
    if path in PROBES:
        return True
    if path == "/" or path.startswith("/playground/"):
        return True  # the playground page: it must load for a visitor to type a key (its calls carry it)
    if settings.metrics_public and path == "/metrics":
        return True
    return settings.docs_public and path.startswith(DOCS)


def presented_key() -> str | None:
    """The key a request carries, in either header form."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("X-API-Key", "").strip() or None


def init_app(app: Flask, settings: Settings) -> None:
    keys = dict(settings.api_keys)
    if not keys:
        logger.warning("no API keys (LLM_API_KEYS, LLM_API_KEYS_FILE): every route is open to anyone")
    elif not settings.ssl_enabled and not _loopback(settings.hostname):
        logger.warning(
            "API keys are set but TLS is off (SERVER_SSL_ENABLED) on %s: keys cross the network in "
            "clear unless a proxy terminates TLS in front",
            settings.hostname,
        )

    @app.before_request
    def require_key() -> None:
        g.api_key = None
        unit = request.environ.get("llm.unit")  # in-process background work, as the key that made it
        if unit is not None:
            g.api_key = keys.get(unit.owner)
            if keys and g.api_key is None:  # never run a removed key's work unbounded, as nobody
                raise UnauthorizedError("The API key that made this work is no longer configured")
            return
        if not keys or request.method == "OPTIONS" or _public(request.path, settings):
            return  # CORS preflights carry no credentials by design
        presented = presented_key()
        if presented is None:
            raise UnauthorizedError(
                "An API key is required: send Authorization: Bearer KEY or X-API-Key: KEY",
                headers=CHALLENGE,
            )
        g.api_key = find(keys, presented)
        if g.api_key is None:
            raise UnauthorizedError("The API key is not valid", headers=CHALLENGE)

    @app.after_request
    def no_sniffing(response):
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
