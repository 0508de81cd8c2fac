"""The engine error table: mistralrs reports every failure as a ValueError with text; each row maps
one recognised message to our error. Anything else is a server fault, never the client's."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from app.engine.pool import LoadedModel
from app.engine.types import GenerationRequest
from app.errors import ApiError, BadRequestError, ChatTemplateMissingError, ContextTooLongError, EngineError

logger = logging.getLogger(__name__)


def prompt_tokens(model: LoadedModel, request: GenerationRequest) -> int:
    """The prompt's tokens: exact for a raw prompt, without the chat template's own otherwise."""
    text = (
        request.prompt
        if request.prompt is not None
        else "".join(m.get("content", "") for m in request.messages)
    )
    return len(model.replicas[0].call(model.runner.tokenize_text, text, True, None))


def context_too_long(request: GenerationRequest, tokens: int, limit: int) -> ContextTooLongError:
    measured = "is" if request.raw else "is at least"
    return ContextTooLongError(
        f"The prompt {measured} {tokens} tokens, more than the model's context length of {limit} "
        "tokens; shorten it",
        details={"prompt_tokens": tokens, "context_length": limit},
    )


def _context_too_long(match: re.Match, model: LoadedModel, request: GenerationRequest) -> ApiError:
    return context_too_long(request, prompt_tokens(model, request), int(match.group(1)))


def _no_chat_template(match: re.Match, model: LoadedModel, request: GenerationRequest) -> ApiError:
    return ChatTemplateMissingError(
        f"Model '{model.model_id}' has no chat template, so it cannot take messages; send a raw "
        "prompt, or give the model a chat template (chat_template in the catalog)",
        details={"model": model.model_id},
    )


def _bad_grammar(match: re.Match, model: LoadedModel, request: GenerationRequest) -> ApiError:
    """The client's own output constraint is the client's fault, named by its field; the server's
    own grammar (a forced tool call) failing is the server's."""
    param = request.grammar.param if request.grammar is not None else None
    if param is None:
        return EngineError(
            f"The engine refused the server's grammar: {match.group(0)}", details={"model": model.model_id}
        )
    return BadRequestError(
        f"The output constraint ({param}) was refused by the engine: {match.group(0)}",
        details={"param": param},
    )


def _busy(match: re.Match, model: LoadedModel, request: GenerationRequest) -> ApiError:
    error = EngineError("The engine is busy; retry", headers={"Retry-After": "1"})
    error.status = 503
    return error


Row = tuple[re.Pattern, Callable[[re.Match, LoadedModel, GenerationRequest], ApiError]]
ERROR_TABLE: list[Row] = [
    (re.compile(r"Prompt sequence length is greater than (\d+)"), _context_too_long),
    (re.compile(r"does not have a chat template"), _no_chat_template),
    (re.compile(r"(?i)(llguidance|grammar|json schema|regex)[^\n]*"), _bad_grammar),
    (re.compile(r"Already borrowed"), _busy),
]


GENERIC_FAILURE = "The server failed to answer this request; its request id is in the server's log"


def is_engine_failure(error: BaseException) -> bool:
    """The engine reports failures as ValueError or RuntimeError, and panics as pyo3's
    PanicException; any other exception is a bug of ours."""
    return isinstance(error, (ValueError, RuntimeError)) or type(error).__name__ == "PanicException"


def translate_error(error: BaseException, model: LoadedModel, request: GenerationRequest) -> ApiError:
    if isinstance(error, ApiError):
        return error
    if not is_engine_failure(error):
        logger.error("generation failed: %s", type(error).__name__, exc_info=error)
        return EngineError(GENERIC_FAILURE, details={"model": model.model_id})
    text = str(error)
    for pattern, build in ERROR_TABLE:
        match = pattern.search(text)
        if match:
            return build(match, model, request)
    first_line = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return EngineError(f"The engine failed: {first_line}", details={"model": model.model_id})
