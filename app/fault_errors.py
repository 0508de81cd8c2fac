"""Each engine fault (app.engine.faults) as the error a client gets: its status, code and wording,
worded for the request's API family (where its clients get embeddings, for one). The one place an
engine fact becomes a sentence."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from app.engine import faults
from app.engine.engine_errors import is_engine_failure
from app.engine.entries import EMBEDDING
from app.error_shapes import Family, current_family
from app.errors import (
    ApiError,
    BadRequestError,
    ChatTemplateMissingError,
    ConflictError,
    ContextTooLongError,
    EngineError,
    ModelNotFoundError,
    ModelNotReadyError,
    OverloadedError,
    RateLimitedError,
    UnprocessableError,
)

logger = logging.getLogger(__name__)

GENERIC_FAILURE = "The server failed to answer this request; its request id is in the server's log"

F = TypeVar("F", bound=faults.EngineFault)
_WORDINGS: dict[type, Callable[[Any, Family], ApiError]] = {}


def _words(kind: type[F]) -> Callable[[Callable[[F, Family], ApiError]], Callable[[F, Family], ApiError]]:
    def register(word: Callable[[F, Family], ApiError]) -> Callable[[F, Family], ApiError]:
        _WORDINGS[kind] = word
        return word

    return register


def fault_error(fault: faults.EngineFault, family: Family | None = None) -> ApiError:
    """`fault` as our error, worded for `family` (the request's by default)."""
    return _WORDINGS[type(fault)](fault, family or current_family())


def api_error(error: BaseException) -> ApiError:
    """Any exception from serving a request as our error: a fault worded, an engine failure that
    escaped the engine's table named, anything else a 500 that says little (the log says more)."""
    if isinstance(error, ApiError):
        return error
    if isinstance(error, faults.EngineFault):
        return fault_error(error)
    if is_engine_failure(error):
        return EngineError(f"The engine failed: {str(error).strip()[:200]}")
    logger.error("generation failed unexpectedly", exc_info=error)
    return EngineError(GENERIC_FAILURE)


# -- the request ----------------------------------------------------------------------------------
@_words(faults.ContextTooLong)
def _context_too_long(fault: faults.ContextTooLong, family: Family) -> ApiError:
    tokens, limit, index = fault.prompt_tokens, fault.context_length, fault.index
    if index is not None:
        return ContextTooLongError(
            f"input[{index}] is {tokens} tokens, more than the model's context length of {limit} tokens",
            details={"index": index, "prompt_tokens": tokens, "context_length": limit},
        )
    measured = "is" if fault.exact else "is at least"
    return ContextTooLongError(
        f"The prompt {measured} {tokens} tokens, more than the model's context length of {limit} "
        "tokens; shorten it",
        details={"prompt_tokens": tokens, "context_length": limit},
    )


@_words(faults.EmptyInput)
def _empty_input(fault: faults.EmptyInput, family: Family) -> ApiError:
    return BadRequestError(f"input[{fault.index}] is empty", details={"index": fault.index})


@_words(faults.UnknownTokenId)
def _unknown_token_id(fault: faults.UnknownTokenId, family: Family) -> ApiError:
    size, index = fault.vocab_size, fault.index
    if index is not None:
        return BadRequestError(
            f"input[{index}]: token id {fault.token_id} is not in the model's vocabulary of {size} tokens",
            details={"index": index, "vocab_size": size},
        )
    return UnprocessableError(
        f"tokens: id {fault.token_id} is not in the model's vocabulary of {size} tokens",
        details={"fields": {"tokens": [f"Ids must be below {size}."]}, "vocab_size": size},
    )


@_words(faults.GrammarRefused)
def _grammar_refused(fault: faults.GrammarRefused, family: Family) -> ApiError:
    """The client's own output constraint is the client's fault, named by its field; the server's
    own grammar (a forced tool call) failing is the server's."""
    if fault.param is None:
        return EngineError(
            f"The engine refused the server's grammar: {fault.engine_text}", details={"model": fault.model}
        )
    return BadRequestError(
        f"The output constraint ({fault.param}) was refused by the engine: {fault.engine_text}",
        details={"param": fault.param},
    )


@_words(faults.WrongModelKind)
def _wrong_model_kind(fault: faults.WrongModelKind, family: Family) -> ApiError:
    """Which models fit, and where this family's clients get embeddings."""
    if fault.kind == EMBEDDING:
        return BadRequestError(
            f"The model '{fault.model}' is an embedding model: it makes embeddings, not text; "
            f"use {family.embed_route}",
            details={"model": fault.model, "kind": EMBEDDING},
        )
    can = ", ".join(fault.embedding_models) or "none is configured (LLM_ALLOWED_MODELS, the catalog)"
    return BadRequestError(
        f"The model '{fault.model}' cannot make embeddings; models that can: {can} "
        "(the engine's embedding architectures: EmbeddingGemma, Qwen3-Embedding)",
        details={"model": fault.model, "embedding_models": fault.embedding_models},
    )


@_words(faults.NoChatTemplate)
def _no_chat_template(fault: faults.NoChatTemplate, family: Family) -> ApiError:
    if fault.generating:
        message = (
            f"Model '{fault.model}' has no chat template, so it cannot take messages; send a raw "
            "prompt, or give the model a chat template (chat_template in the catalog)"
        )
    else:
        message = f"The model '{fault.model}' has no chat template; give one in the catalog (chat_template)"
    return ChatTemplateMissingError(message, details={"model": fault.model})


@_words(faults.TemplateRefused)
def _template_refused(fault: faults.TemplateRefused, family: Family) -> ApiError:
    return BadRequestError(f"The model's chat template refused the messages: {fault.reason}")


@_words(faults.RawCannotStream)
def _raw_cannot_stream(fault: faults.RawCannotStream, family: Family) -> ApiError:
    return BadRequestError(
        "raw: a raw prompt cannot be streamed (the engine completes a raw prompt in one call); "
        "send it without streaming",
        details={"field": "raw"},
    )


# -- the engine -----------------------------------------------------------------------------------
@_words(faults.EngineBusy)
def _engine_busy(fault: faults.EngineBusy, family: Family) -> ApiError:
    error = EngineError("The engine is busy; retry", headers={"Retry-After": str(fault.retry_after)})
    error.status = 503
    return error


@_words(faults.EngineFailed)
def _engine_failed(fault: faults.EngineFailed, family: Family) -> ApiError:
    message = f"The engine failed: {fault.first_line}" if fault.first_line else GENERIC_FAILURE
    return EngineError(message, details={"model": fault.model})


# -- models ---------------------------------------------------------------------------------------
@_words(faults.ModelNotAllowed)
def _model_not_allowed(fault: faults.ModelNotAllowed, family: Family) -> ApiError:
    return ModelNotFoundError(
        f"Model '{fault.model}' is not allowed; allowed models: {', '.join(fault.allowed)}",
        details={"model": fault.model, "allowed": fault.allowed},
    )


@_words(faults.ModelNotFound)
def _model_not_found(fault: faults.ModelNotFound, family: Family) -> ApiError:
    return ModelNotFoundError(fault.description, details=dict(fault.details))


@_words(faults.DownloadFailed)
def _download_failed(fault: faults.DownloadFailed, family: Family) -> ApiError:
    return ModelNotReadyError(
        str(fault), details={"model": fault.model, "revision": fault.revision, "endpoint": fault.endpoint}
    )


@_words(faults.ModelLoading)
def _model_loading(fault: faults.ModelLoading, family: Family) -> ApiError:
    return ModelNotReadyError(
        f"Model '{fault.model}' is loading; retry shortly",
        details={"model": fault.model, "state": fault.state},
        headers={"Retry-After": str(fault.retry_after)},
    )


@_words(faults.ModelLoadFailed)
def _model_load_failed(fault: faults.ModelLoadFailed, family: Family) -> ApiError:
    return ModelNotReadyError(
        f"Model '{fault.model}' failed to load: {fault.reason}",
        details={"model": fault.model, "state": fault.state},
    )


@_words(faults.NoRoomToLoad)
def _no_room_to_load(fault: faults.NoRoomToLoad, family: Family) -> ApiError:
    return OverloadedError(
        f"Model '{fault.model}' cannot load now: {fault.max_loaded_models} models are loaded "
        "(LLM_MAX_LOADED_MODELS) and all are busy or loading; retry shortly",
        details={"model": fault.model, "max_loaded_models": fault.max_loaded_models},
        headers={"Retry-After": str(fault.retry_after)},
    )


@_words(faults.ModelBusy)
def _model_busy(fault: faults.ModelBusy, family: Family) -> ApiError:
    if fault.state == "loading":
        why = "it is loading; retry when the load ends"
    elif fault.action == "deleted":
        why = "it is loaded; unload it first"
    else:
        why = f"{fault.leases} request(s) are using it; retry when they end"
    return ConflictError(
        f"Model '{fault.model}' cannot be {fault.action} now: {why}",
        details={"model": fault.model, "state": fault.state, "requests": fault.leases},
    )


@_words(faults.NoHubSource)
def _no_hub_source(fault: faults.NoHubSource, family: Family) -> ApiError:
    if fault.why == faults.NoHubSource.OFFLINE:
        return ConflictError(
            f"Model '{fault.model}' cannot be pulled: HF_HUB_OFFLINE=1 keeps this server off the hub",
            details={"model": fault.model},
        )
    if fault.why == faults.NoHubSource.LOCAL:
        message = f"Model '{fault.model}' is a local path in LLM_MODELS_FILE ({fault.where}), not a hub model"
    else:
        message = f"Model '{fault.model}' is not a hub id (ORG/NAME): nothing to pull or delete"
    return BadRequestError(message, details={"model": fault.model})


# -- slots ----------------------------------------------------------------------------------------
@_words(faults.KeyShareUsed)
def _key_share_used(fault: faults.KeyShareUsed, family: Family) -> ApiError:
    return RateLimitedError(
        f"API key '{fault.key}' has {fault.share} generations running or waiting, its share of the slots "
        f"(max_concurrent); retry in {fault.retry_after}s",
        details={"max_concurrent": fault.share, "held_by": list(fault.held_by)},
        headers={"Retry-After": str(fault.retry_after)},
    )


@_words(faults.SlotsBusy)
def _slots_busy(fault: faults.SlotsBusy, family: Family) -> ApiError:
    if fault.why == faults.QUEUE_TIMEOUT:
        why = f"none freed within {fault.timeout:g}s (LLM_QUEUE_TIMEOUT_SECONDS)"
    elif fault.why == faults.QUEUE_FULL:
        why = f"the queue is full ({fault.max_waiting} waiting, LLM_MAX_QUEUED_REQUESTS)"
    else:
        why = f"the expected wait of {fault.estimated_wait:.1f}s is longer than this request may wait"
    return OverloadedError(
        f"All {fault.limit} generation slots are busy (LLM_MAX_CONCURRENT_REQUESTS): {why}; "
        f"this request would be number {fault.position} in the queue; retry in {fault.retry_after}s",
        details={
            "limit": fault.limit,
            "waiting": fault.waiting,
            "queue_position": fault.position,
            "estimated_wait_seconds": round(fault.estimated_wait, 2),
        },
        headers={"Retry-After": str(fault.retry_after)},
    )
