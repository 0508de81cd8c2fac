"""The engine layer: the only package that imports mistralrs. No Flask here."""

from app.engine.generation import Stream, complete_raw, completion, open_stream
from app.engine.limiter import SlotLimiter
from app.engine.pool import LoadedModel, ModelPool
from app.engine.types import (
    Chunk,
    Completion,
    GenerationRequest,
    Grammar,
    Sampling,
    Timings,
    TokenLogprob,
    ToolCall,
    Usage,
)

__all__ = [
    "Chunk",
    "Completion",
    "GenerationRequest",
    "Grammar",
    "LoadedModel",
    "ModelPool",
    "Sampling",
    "SlotLimiter",
    "Stream",
    "Timings",
    "TokenLogprob",
    "ToolCall",
    "Usage",
    "complete_raw",
    "completion",
    "open_stream",
]
