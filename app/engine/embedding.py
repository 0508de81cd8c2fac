"""Embeddings from a model of the engine's embedding architectures (EmbeddingGemma, Qwen3-Embedding)."""

from __future__ import annotations

import time
from collections.abc import Callable

from app.engine.entries import EMBEDDING
from app.engine.faults import ContextTooLong, EmptyInput, UnknownTokenId, WrongModelKind
from app.engine.pool import LoadedModel
from app.engine.tokens import counts, vocabulary_size
from app.engine.types import EmbeddingRequest, Embeddings, Timings, Usage


def check_kind(model: LoadedModel, embeddings: bool, embedding_models: Callable[[], list[str]]) -> None:
    """Refuse a request for what only the other kind of model does (`embeddings`: the request wants
    them); `embedding_models` lists the models that make embeddings."""
    if (model.kind == EMBEDDING) != embeddings:
        raise WrongModelKind(model.model_id, model.kind, embedding_models())


def embed(model: LoadedModel, request: EmbeddingRequest, started: float | None = None) -> Embeddings:
    """One vector per input, in order; an input longer than the context is refused (never cut).
    `started`: when the request arrived (time.monotonic), which its timings count from."""
    import mistralrs

    started = time.monotonic() if started is None else started
    text_counts = iter(counts(model, [i for i in request.inputs if isinstance(i, str)], True))
    sizes = [len(i) if isinstance(i, tuple) else next(text_counts) for i in request.inputs]
    limit = model.context_length
    for index, count in enumerate(sizes):
        if limit is not None and count > limit:
            raise ContextTooLong(count, limit, index=index)
        if count == 0:
            raise EmptyInput(index)
    size = vocabulary_size(model)
    for index, ids in enumerate(request.inputs):
        highest = max(ids) if isinstance(ids, tuple) else None
        if size is not None and highest is not None and highest >= size:
            raise UnknownTokenId(highest, size, index)
    inputs = [list(i) if isinstance(i, tuple) else i for i in request.inputs]
    engine_request = mistralrs.EmbeddingRequest(input=inputs)
    replica = model.take()
    try:
        vectors = replica.call(replica.runner.send_embedding_request, engine_request)
    finally:
        model.give(replica)
    elapsed = time.monotonic() - started
    return Embeddings(model.model_id, vectors, Usage(sum(sizes), 0), Timings(total_seconds=elapsed))
