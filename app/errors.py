"""The error tree, its one JSON envelope, and the one handler that turns any error into a response.

Every error body has the shape
``{"error": {"status": int, "code": str, "message": str, "request_id": str, "details": {...}}}``.
The engine never raises these: it raises facts (app.engine.faults), which app.fault_errors words as
these errors for the request's API family; the handler below does so for a fault that reaches it.
This module imports no Flask at module level (the command line uses the tree too).
"""

from __future__ import annotations

import logging
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


class AdminRequiredError(ApiError):
    """A route of the admin scope (model management), asked without it: a key that is not admin,
    or no keys at all while LLM_ADMIN_OPEN is off."""

    status = 403
    code = "admin_required"


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


class NotFoundError(ApiError):
    """A stored object that does not exist, or belongs to another API key (never told apart)."""

    status = 404
    code = "not_found"


class UnsupportedEndpointError(NotFoundError):
    """A published API's endpoint that this server does not serve, named and explained."""

    code = "unsupported_endpoint"


class ConflictError(ApiError):
    """The object's state does not allow the operation (cancel a finished batch, ...)."""

    status = 409
    code = "conflict"


class PayloadTooLargeError(ApiError):
    status = 413
    code = "payload_too_large"


class StorageError(ApiError):
    """The store could not take the change (disk full, database unreachable): nothing was written."""

    status = 503
    code = "storage_unavailable"


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

    from app.engine.faults import EngineFault
    from app.error_shapes import shaped
    from app.fault_errors import fault_error

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

    @app.errorhandler(EngineFault)
    def handle_engine_fault(fault: EngineFault):
        return handle_api_error(fault_error(fault))

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
