"""Thin project subclasses of flask-smorest's Api and Blueprint carrying our error defaults."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask_smorest import Api as SmorestApi
from flask_smorest import Blueprint as SmorestBlueprint
from marshmallow import Schema

from app.api.access import ADMIN, KEYED
from app.api.anthropic.schemas import AnthropicErrorSchema
from app.api.json_body import StrictJsonParser
from app.api.schemas import ErrorSchema, OllamaErrorSchema, OpenAIErrorSchema
from app.error_shapes import ANTHROPIC, NATIVE, OLLAMA, OPENAI, Family

ERROR_DESCRIPTIONS = {
    400: "Malformed JSON (bad UTF-8, NaN, nested too deep, a lone surrogate), prompt longer than the "
    "context, or no chat template",
    401: "No API key, or one the server does not know (when keys are configured)",
    403: "The API key may not use this model (model_not_allowed)",
    404: "Unknown or not allowed model (the allowed ones are listed)",
    415: "A body that is not JSON",
    422: "A field out of range, of the wrong type, or unknown (named in the message)",
    429: "The API key's share of the slots (max_concurrent) or token quota is used up (Retry-After, "
    "X-RateLimit-*-Tokens)",
    500: "The engine failed (the message says how); the worker keeps serving",
    503: "Over the slot limit (queue full, or no slot within LLM_QUEUE_TIMEOUT_SECONDS: Retry-After "
    "estimated from the measured generation time and queue position), the model is not loaded yet, "
    "or the server is draining",
    504: "The request's deadline (timeout, LLM_REQUEST_TIMEOUT_SECONDS) passed before any output",
}


# The errors of the stored objects' routes (responses, files, batches).
OBJECT_ERRORS = {
    400: "A request the object's state or the store's settings do not allow (named in the message)",
    401: ERROR_DESCRIPTIONS[401],
    404: "No such object for this API key (never made, deleted, expired, or another key's)",
    409: "The object's state does not allow it (cancel a finished batch or response)",
    413: "An upload over LLM_MAX_FILE_MB",
    422: ERROR_DESCRIPTIONS[422],
    503: "The store could not take the change (storage_unavailable: nothing was written), or the server "
    "is draining",
}


# The errors of the admin routes (model management).
ADMIN_ERRORS = {
    400: "A model that is not from the hub (a local path in LLM_MODELS_FILE, not an ORG/NAME id)",
    401: ERROR_DESCRIPTIONS[401],
    403: "The API key lacks the admin scope, or (without keys) LLM_ADMIN_OPEN is off (admin_required); "
    "or the key may not use this model (model_not_allowed)",
    404: "A model LLM_ALLOWED_MODELS does not allow, one the hub does not have, or (delete) one not in "
    "the Hugging Face cache",
    409: "The model is in use: loading, serving requests (unload), or loaded (delete); or HF_HUB_OFFLINE "
    "keeps the server off the hub (pull)",
    422: ERROR_DESCRIPTIONS[422],
    503: "The hub could not be reached (pull), the model failed to load, or no room to load it "
    "(LLM_MAX_LOADED_MODELS, all busy)",
}


class Api(SmorestApi):
    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self) -> None:
        """The app's own handlers (app.errors) render every error; flask-smorest's stay out."""


class Blueprint(SmorestBlueprint):
    """A blueprint of one API family: its errors' shape (app.errors.Family) and their schema."""

    ARGUMENTS_PARSER = StrictJsonParser()
    FAMILY: Family = NATIVE
    ACCESS: str = KEYED  # who may call its routes (app.api.access): a key, or (ADMIN) an admin key
    ERROR_SCHEMA: type[Schema] = ErrorSchema
    ERROR_STATUSES: tuple[int, ...] = tuple(ERROR_DESCRIPTIONS)

    def generation_errors(self) -> Callable[[Any], Any]:
        """Document the error responses every generation endpoint can give."""

        def decorator(view: Any) -> Any:
            for status in self.ERROR_STATUSES:
                description = ERROR_DESCRIPTIONS[status]
                if status == 400 and 422 not in self.ERROR_STATUSES:
                    description += "; or a field out of range, of the wrong type, or unknown"
                view = self.alt_response(status, schema=self.ERROR_SCHEMA, description=description)(view)
            return view

        return decorator

    def admin_errors(self) -> Callable[[Any], Any]:
        """Document the error responses of the admin routes."""

        def decorator(view: Any) -> Any:
            for status, description in ADMIN_ERRORS.items():
                if status == 422 and 422 not in self.ERROR_STATUSES:
                    continue
                view = self.alt_response(status, schema=self.ERROR_SCHEMA, description=description)(view)
            return view

        return decorator

    def object_errors(self) -> Callable[[Any], Any]:
        """Document the error responses of the stored objects' routes."""

        def decorator(view: Any) -> Any:
            for status, description in OBJECT_ERRORS.items():
                if status == 422 and 422 not in self.ERROR_STATUSES:
                    continue
                view = self.alt_response(status, schema=self.ERROR_SCHEMA, description=description)(view)
            return view

        return decorator


class OpenAIBlueprint(Blueprint):
    """Under /v1 errors take OpenAI's shape, and are documented so."""

    FAMILY = OPENAI
    ERROR_SCHEMA = OpenAIErrorSchema


class AnthropicBlueprint(Blueprint):
    """Under /v1/messages errors take Anthropic's shape, and every invalid request is a 400."""

    FAMILY = ANTHROPIC
    ERROR_SCHEMA = AnthropicErrorSchema
    ERROR_STATUSES = tuple(status for status in ERROR_DESCRIPTIONS if status != 422)


class OllamaBlueprint(Blueprint):
    """Under /ollama errors take Ollama's shape, `{"error": "..."}`, and an invalid request is a 400."""

    FAMILY = OLLAMA
    ERROR_SCHEMA = OllamaErrorSchema
    ERROR_STATUSES = tuple(status for status in ERROR_DESCRIPTIONS if status != 422)


class AdminBlueprint(Blueprint):
    """Model management under /api/admin: every route needs the admin scope."""

    ACCESS = ADMIN


class OllamaAdminBlueprint(OllamaBlueprint):
    """Ollama's model management (pull, delete): its shapes, and the admin scope."""

    ACCESS = ADMIN
