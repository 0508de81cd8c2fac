"""The error tree, its one JSON envelope, and the one handler that turns any error into a response.

Every error body has the shape
``{"error": {"status": int, "code": str, "message": str, "request_id": str, "details": {...}}}``.
This module imports no Flask at module level so the engine package can raise these errors too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """Base of every error the service reports; subclasses fix the status and the code."""

    status = 500
    code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.headers = headers or {}


class BadRequestError(ApiError):
    status = 400
    code = "bad_request"


class ContextTooLongError(BadRequestError):
    code = "context_length_exceeded"


class ChatTemplateMissingError(BadRequestError):
    code = "chat_template_missing"


class UnauthorizedError(ApiError):
    """No API key, or one the server does not know (never echoed)."""

    status = 401
    code = "invalid_api_key"


class ModelNotAllowedError(ApiError):
    status = 403
    code = "model_not_allowed"


class RateLimitedError(ApiError):
    """The key's share of the slots or its token quota is used up (Retry-After says when to retry)."""

    status = 429
    code = "rate_limited"


class ModelNotFoundError(ApiError):
    status = 404
    code = "model_not_found"


class UnprocessableError(ApiError):
    status = 422
    code = "validation_error"


class OverloadedError(ApiError):
    status = 503
    code = "overloaded"


class ModelNotReadyError(ApiError):
    status = 503
    code = "model_not_ready"


class EngineError(ApiError):
    status = 500
    code = "engine_error"


class ShuttingDownError(ApiError):
    """The worker's drain bound (LLM_DRAIN_SECONDS) ended the generation."""

    status = 503
    code = "shutting_down"


class DeadlineExceededError(ApiError):
    """The request's deadline passed before it produced anything."""

    status = 504
    code = "deadline_exceeded"


class ClientClosedRequestError(ApiError):
    """The client left; nobody reads this answer (499, as nginx logs it)."""

    status = 499
    code = "client_closed_request"


_HTTP_CODES = {
    401: "invalid_api_key",
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
}


def envelope(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> dict:
    """The one error body; the request id is added when a request is active."""
    from flask import g, has_request_context

    body: dict[str, Any] = {"status": status, "code": code, "message": message}
    if has_request_context():
        body["request_id"] = g.get("request_id")
    if details:
        body["details"] = details
    return {"error": body}


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
OPENAI = Family("openai", openai_envelope)
ANTHROPIC = Family("anthropic", anthropic_envelope, invalid_status=400)
OLLAMA = Family("ollama", ollama_envelope, invalid_status=400)


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


def _validation_message(messages: Any) -> tuple[str, dict]:
    """Flatten webargs' {location: {field: [msgs]}} into one line naming each field."""
    fields: dict[str, Any] = {}
    if isinstance(messages, dict):
        for location_messages in messages.values():
            if isinstance(location_messages, dict):
                fields.update(location_messages)
    parts = []
    for name, problems in fields.items():
        text = "; ".join(_flatten(problems))
        parts.append(f"{name}: {text}" if name != "_schema" else text)
    return ("Invalid request: " + " | ".join(parts)) if parts else "Invalid request", fields


def _flatten(problems: Any) -> list[str]:
    if isinstance(problems, str):
        return [problems]
    if isinstance(problems, list):
        return [p for item in problems for p in _flatten(item)]
    if isinstance(problems, dict):
        return [f"{k}: {v}" for k, msgs in problems.items() for v in _flatten(msgs)]
    return [str(problems)]


def register_error_handlers(app: Any) -> None:
    """Route every exception through the one envelope."""
    from flask import jsonify
    from werkzeug.exceptions import HTTPException

    def respond(shape: tuple[int, dict], headers: dict[str, str] | None = None):
        status, body = shape
        response = jsonify(body)
        response.status_code = status
        for key, value in (headers or {}).items():
            response.headers[key] = value
        return response

    @app.errorhandler(ApiError)
    def handle_api_error(error: ApiError):
        if error.status >= 500:  # 503s are expected under load: a warning, not an error
            logger.log(
                logging.WARNING if error.status == 503 else logging.ERROR, "%s: %s", error.code, error.message
            )
        return respond(
            shaped(error.status, error.code, error.message, error.details),
            error.headers,
        )

    @app.errorhandler(HTTPException)
    def handle_http_exception(error: HTTPException):
        status = error.code or 500
        code = _HTTP_CODES.get(status, "http_error")
        data = getattr(error, "data", None) or {}
        if status == 422 and "messages" in data:
            message, fields = _validation_message(data["messages"])
            return respond(shaped(status, code, message, {"fields": fields}))
        message = data.get("message") or error.description or error.name
        if status == 400 and "messages" in data:
            message = "Malformed JSON body: " + "; ".join(_flatten(data["messages"]))
        return respond(shaped(status, code, message), dict(data.get("headers") or {}))

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception):
        logger.exception("unhandled error")
        return respond(shaped(500, "internal_error", "Internal server error"))
