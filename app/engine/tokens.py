"""Tokens without generating: a text's or a conversation's ids, and ids back to text.

Calls hold the model's submit lock (the runner is not re-entrant) and run off the gevent hub.
"""

from __future__ import annotations

import json
from pathlib import Path

from app.engine.concurrency import NOT_FAILURES
from app.engine.engine_errors import translate_error
from app.engine.faults import UnknownTokenId
from app.engine.gguf_meta import read_metadata
from app.engine.pool import LoadedModel
from app.engine.templates import chat_template
from app.engine.types import GenerationRequest, Sampling

_PROBE = Sampling(max_tokens=1, temperature=0.0, top_p=1.0)
_FATAL = NOT_FAILURES


def _call(model: LoadedModel, fn, *args):
    try:
        return model.replicas[0].call(fn, *args)
    except _FATAL:
        raise
    except BaseException as error:  # a panic (pyo3's PanicException) too: the engine's failure, worded
        raise translate_error(error, model, GenerationRequest(model.model_id, _PROBE, prompt="")) from error


def tokenize(model: LoadedModel, text: str, add_special_tokens: bool) -> list[int]:
    return list(_call(model, model.runner.tokenize_text, text, add_special_tokens, None))


def counts(model: LoadedModel, texts: list[str], add_special_tokens: bool) -> list[int]:
    """Each text's token count, in one call off the hub."""

    def each(texts: list[str]) -> list[int]:
        return [len(model.runner.tokenize_text(text, add_special_tokens, None)) for text in texts]

    return _call(model, each, texts) if texts else []


def vocabulary_size(model: LoadedModel) -> int | None:
    """How many token ids the model has (the engine skips unknown ids silently), from the GGUF
    header's token list or config.json; None when neither says."""
    if model.vocab_size is None:
        location = Path(model.source.location)
        if model.source.format == "gguf":
            key = "tokenizer.ggml.tokens"
            model.vocab_size = len(read_metadata(location / model.source.filenames[0], {key}).get(key) or [])
        elif (location / "config.json").is_file():
            config = json.loads((location / "config.json").read_text(encoding="utf-8"))
            model.vocab_size = int(config.get("vocab_size") or 0)
    return model.vocab_size or None


def detokenize(model: LoadedModel, ids: list[int], skip_special_tokens: bool) -> str:
    size = vocabulary_size(model)
    unknown = [i for i in ids if size is not None and i >= size]
    if unknown:
        raise UnknownTokenId(unknown[0], size)
    return _call(model, model.runner.detokenize_text, ids, skip_special_tokens)


def pieces(model: LoadedModel, ids: list[int]) -> list[str]:
    """Each id's own text (special tokens included), in one call off the hub."""

    def each(ids: list[int]) -> list[str]:
        return [model.runner.detokenize_text([i], False) for i in ids]

    return _call(model, each, ids)


def prompt(model: LoadedModel, messages: list[dict], tools: list[dict] | None = None) -> str:
    """The text the model reads for `messages`: its chat template, with the assistant's turn opened."""
    return chat_template(model, lambda i: detokenize(model, [i], False)).render(messages, tools)


def template_text(model: LoadedModel) -> str:
    """The model's chat template, as text."""
    return chat_template(model, lambda i: detokenize(model, [i], False)).text
