"""API keys, checked before every request by the registry of app.api.access: a public route needs
none, every other route a key (`Authorization: Bearer KEY` or `X-API-Key: KEY`), an admin route a key
with the admin scope.

With no key configured the server is open (said once at start), except the admin routes, which stay
closed unless LLM_ADMIN_OPEN says otherwise. The key that matched is `g.api_key`; only its name ever
reaches a log line, a metric or a span.
"""

from __future__ import annotations

import ipaddress
import logging

from flask import Flask, g, request

from app.api import access
from app.errors import AdminRequiredError, UnauthorizedError
from app.keys_file import ApiKey, find
from app.settings import Settings

logger = logging.getLogger(__name__)

CHALLENGE = {"WWW-Authenticate": "Bearer"}


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
        logger.warning(
            "no API keys (LLM_API_KEYS, LLM_API_KEYS_FILE): every route is open to anyone%s",
            " (model management too: LLM_ADMIN_OPEN=true)"
            if settings.admin_open
            else "; model management (the admin routes) is closed (LLM_ADMIN_OPEN=false)",
        )
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
        if request.method == "OPTIONS":
            return  # CORS preflights carry no credentials by design
        endpoint = request.url_rule.endpoint if request.url_rule is not None else None
        needed = access.level(app, endpoint, settings)
        if needed == access.PUBLIC:
            return
        if not keys:
            if needed == access.ADMIN:
                require_admin(settings, "this route")
            return
        g.api_key = _matching_key(keys)
        if needed == access.ADMIN:
            require_admin(settings, "this route")

    @app.after_request
    def no_sniffing(response):
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def require_admin(settings: Settings, what: str) -> None:
    """403 unless the request has the admin scope: its key is admin, or (no keys) LLM_ADMIN_OPEN."""
    key = g.get("api_key")
    if key is not None and key.admin:
        return
    if key is not None:
        raise AdminRequiredError(
            f"API key '{key.name}' lacks the admin scope {what} needs (admin = true in "
            "LLM_API_KEYS_FILE, or a key of LLM_ADMIN_API_KEYS)"
        )
    if not settings.api_keys and not settings.admin_open:
        raise AdminRequiredError(
            f"Model management ({what}) is closed on a server without API keys: set "
            "LLM_ADMIN_OPEN=true to open it to anyone, or configure admin keys (LLM_ADMIN_API_KEYS)"
        )
    if settings.api_keys:
        raise AdminRequiredError(f"An API key with the admin scope is needed for {what}")


def _matching_key(keys: dict[str, ApiKey]) -> ApiKey:
    """The configured key the request carries; 401 without one."""
    presented = presented_key()
    if presented is None:
        raise UnauthorizedError(
            "An API key is required: send Authorization: Bearer KEY or X-API-Key: KEY",
            headers=CHALLENGE,
        )
    key = find(keys, presented)
    if key is None:
        raise UnauthorizedError("The API key is not valid", headers=CHALLENGE)
    return key


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
