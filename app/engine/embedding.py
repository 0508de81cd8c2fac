"""Embeddings from a model of the engine's embedding architectures (EmbeddingGemma, Qwen3-Embedding)."""

from __future__ import annotations

import time

from app.engine.entries import EMBEDDING
from app.engine.pool import LoadedModel
from app.engine.tokens import counts, vocabulary_size
from app.engine.types import EmbeddingRequest, Embeddings, Timings, Usage
from app.errors import BadRequestError, ContextTooLongError


def wrong_kind(model: LoadedModel, embedding_models: list[str], embed_route: str = "") -> BadRequestError:
    """A request for the other kind of model: which models fit (and, given by the API, where its
    clients get embeddings)."""
    if model.kind == EMBEDDING:
        where = f"; use {embed_route}" if embed_route else ""
        return BadRequestError(
            f"The model '{model.model_id}' is an embedding model: it makes embeddings, not text{where}",
            details={"model": model.model_id, "kind": EMBEDDING},
        )
    can = ", ".join(embedding_models) or "none is configured (LLM_ALLOWED_MODELS, the catalog)"
    return BadRequestError(
        f"The model '{model.model_id}' cannot make embeddings; models that can: {can} "
        "(the engine's embedding architectures: EmbeddingGemma, Qwen3-Embedding)",
        details={"model": model.model_id, "embedding_models": embedding_models},
    )


def embed(model: LoadedModel, request: EmbeddingRequest) -> Embeddings:
    """One vector per input, in order; an input longer than the context is refused (never cut)."""
    import mistralrs

    started = time.perf_counter()
    text_counts = iter(counts(model, [i for i in request.inputs if isinstance(i, str)], True))
    sizes = [len(i) if isinstance(i, tuple) else next(text_counts) for i in request.inputs]
    limit = model.context_length
    for index, count in enumerate(sizes):
        if limit is not None and count > limit:
            raise ContextTooLongError(
                f"input[{index}] is {count} tokens, more than the model's context length of {limit} tokens",
                details={"index": index, "prompt_tokens": count, "context_length": limit},
            )
        if count == 0:
            raise BadRequestError(f"input[{index}] is empty", details={"index": index})
    size = vocabulary_size(model)
    for index, ids in enumerate(request.inputs):
        highest = max(ids) if isinstance(ids, tuple) else None
        if size is not None and highest is not None and highest >= size:
            raise BadRequestError(
                f"input[{index}]: token id {highest} is not in the model's vocabulary of {size} tokens",
                details={"index": index, "vocab_size": size},
            )
    inputs = [list(i) if isinstance(i, tuple) else i for i in request.inputs]
    engine_request = mistralrs.EmbeddingRequest(input=inputs)
    replica = model.take()
    try:
        vectors = replica.call(replica.runner.send_embedding_request, engine_request)
    finally:
        model.give(replica)
    elapsed = time.perf_counter() - started
    return Embeddings(model.model_id, vectors, Usage(sum(sizes), 0), Timings(total_seconds=elapsed))
