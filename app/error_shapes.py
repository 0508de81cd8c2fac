"""Each API family's error shape (native, OpenAI, Anthropic, Ollama) and the one rule that picks it
for a request: the family of the blueprint serving it (app.api.base carries each family)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.errors import envelope

OPENAI_TYPES = {
    401: "invalid_request_error",
    403: "invalid_request_error",
    429: "rate_limit_error",
    400: "invalid_request_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    405: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
}


def openai_envelope(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> dict:
    """OpenAI's error shape, used under /v1: {"error": {"message", "type", "param", "code"}}."""
    details = details or {}
    fields = details.get("fields") or {}
    param = details.get("param") or (next(iter(fields)) if fields else None)
    if param is None and code == "model_not_found":
        param = "model"
    error_type = OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
}


def anthropic_envelope(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> dict:
    """Anthropic's error shape, used under /v1/messages: {"type": "error", "error": {"type", "message"}}.
    Our code and details ride along in the error object (clients ignore what they do not know)."""
    from flask import g, has_request_context

    error_type = ANTHROPIC_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    error: dict[str, Any] = {"type": error_type, "message": message, "code": code}
    if details:
        error["details"] = details
    body: dict[str, Any] = {"type": "error", "error": error}
    if has_request_context():
        body["request_id"] = g.get("request_id")
    return body


@dataclass(frozen=True)
class Family:
    """An API family's error conventions: its envelope, and the status an invalid request gets.
    Each blueprint carries its family (app.api.base); nothing else decides a shape."""

    name: str
    envelope: Callable[[int, str, str, dict[str, Any] | None], dict]
    invalid_status: int = 422  # Anthropic's API answers every invalid request 400
    embed_route: str = "POST /api/embed"  # where this family's clients get embeddings

    def shape(
        self, status: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> tuple[int, dict]:
        if status == 422:
            status = self.invalid_status
        return status, self.envelope(status, code, message, details)


def ollama_envelope(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> dict:
    """Ollama's error shape: {"error": "..."} (the request id is in the X-Request-ID header)."""
    return {"error": message}


NATIVE = Family("native", envelope)
OPENAI = Family("openai", openai_envelope, embed_route="POST /v1/embeddings")
ANTHROPIC = Family("anthropic", anthropic_envelope, invalid_status=400, embed_route="POST /v1/embeddings")
OLLAMA = Family("ollama", ollama_envelope, invalid_status=400, embed_route="POST /ollama/api/embed")


def current_family() -> Family:
    """The family of the blueprint whose route the request's path names (with any method: a 405 is
    answered in the route's family); for a path no route has, the family of the blueprint it falls
    under by prefix (the longest); native otherwise."""
    from flask import current_app, has_request_context, request

    if not has_request_context():
        return NATIVE
    name = request.blueprint or _blueprint_of(current_app, request.path)
    blueprint = current_app.blueprints.get(name or "")
    if blueprint is not None:
        return getattr(blueprint, "FAMILY", NATIVE)
    best, family = -1, NATIVE
    for candidate in current_app.blueprints.values():
        prefix = (candidate.url_prefix or "").rstrip("/")
        if prefix and request.path.startswith(prefix + "/") and len(prefix) > best:
            best, family = len(prefix), getattr(candidate, "FAMILY", NATIVE)
    return family


def _blueprint_of(app: Any, path: str) -> str | None:
    """The blueprint of the route at `path`, whatever its method."""
    from werkzeug.exceptions import HTTPException, MethodNotAllowed

    adapter = app.url_map.bind("localhost")
    try:
        endpoint, _ = adapter.match(path, method="GET")
    except MethodNotAllowed as refused:
        try:
            endpoint, _ = adapter.match(path, method=sorted(refused.valid_methods or ["POST"])[0])
        except HTTPException:
            return None
    except HTTPException:  # no such route (or a redirect)
        return None
    return endpoint.rpartition(".")[0] or None


def shaped(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> tuple[int, dict]:
    """The status and body in the shape of the request's API family."""
    return current_family().shape(status, code, message, details)
