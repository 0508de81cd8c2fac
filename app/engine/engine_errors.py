"""The engine error table: mistralrs reports every failure as a ValueError with text; each row maps
one recognised message to our fault (app.engine.faults). Anything else is a server fault, never the
client's."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from app.engine.faults import (
    ContextTooLong,
    EngineBusy,
    EngineFailed,
    EngineFault,
    GrammarRefused,
    NoChatTemplate,
)
from app.engine.pool import LoadedModel
from app.engine.types import GenerationRequest

logger = logging.getLogger(__name__)


def prompt_tokens(model: LoadedModel, request: GenerationRequest) -> int:
    """The prompt's tokens: exact for a raw prompt, without the chat template's own otherwise."""
    text = (
        request.prompt
        if request.prompt is not None
        else "".join(m.get("content", "") for m in request.messages)
    )
    return len(model.replicas[0].call(model.runner.tokenize_text, text, True, None))


def context_too_long(request: GenerationRequest, tokens: int, limit: int) -> ContextTooLong:
    """A raw prompt's count is exact; a conversation's leaves out its chat template's tokens."""
    return ContextTooLong(tokens, limit, exact=request.raw)


def _context_too_long(match: re.Match, model: LoadedModel, request: GenerationRequest) -> EngineFault:
    return context_too_long(request, prompt_tokens(model, request), int(match.group(1)))


def _no_chat_template(match: re.Match, model: LoadedModel, request: GenerationRequest) -> EngineFault:
    return NoChatTemplate(model.model_id, generating=True)


def _bad_grammar(match: re.Match, model: LoadedModel, request: GenerationRequest) -> EngineFault:
    """The constraint's field when the client gave it; None when it is the server's own."""
    param = request.grammar.param if request.grammar is not None else None
    return GrammarRefused(model.model_id, param, match.group(0))


def _busy(match: re.Match, model: LoadedModel, request: GenerationRequest) -> EngineFault:
    return EngineBusy()


Row = tuple[re.Pattern, Callable[[re.Match, LoadedModel, GenerationRequest], EngineFault]]
ERROR_TABLE: list[Row] = [
    (re.compile(r"Prompt sequence length is greater than (\d+)"), _context_too_long),
    (re.compile(r"does not have a chat template"), _no_chat_template),
    (re.compile(r"(?i)(llguidance|grammar|json schema|regex)[^\n]*"), _bad_grammar),
    (re.compile(r"Already borrowed"), _busy),
]


def is_engine_failure(error: BaseException) -> bool:
    """The engine reports failures as ValueError or RuntimeError, and panics as pyo3's
    PanicException; any other exception is a bug of ours."""
    return isinstance(error, (ValueError, RuntimeError)) or type(error).__name__ == "PanicException"


def translate_error(error: BaseException, model: LoadedModel, request: GenerationRequest) -> EngineFault:
    if isinstance(error, EngineFault):
        return error
    if not is_engine_failure(error):
        logger.error("generation failed: %s", type(error).__name__, exc_info=error)
        return EngineFailed(model.model_id, None)
    text = str(error)
    for pattern, build in ERROR_TABLE:
        match = pattern.search(text)
        if match:
            return build(match, model, request)
    first_line = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return EngineFailed(model.model_id, first_line)
