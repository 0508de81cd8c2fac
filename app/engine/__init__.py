"""The engine layer: the only package that imports mistralrs. No Flask here."""

from app.engine.generation import Stream, complete, open_stream
from app.engine.limiter import SlotLimiter
from app.engine.pool import LoadedModel, ModelPool
from app.engine.types import Chunk, Completion, GenerationRequest, Sampling, Timings, Usage

__all__ = [
    "Chunk",
    "Completion",
    "GenerationRequest",
    "LoadedModel",
    "ModelPool",
    "Sampling",
    "SlotLimiter",
    "Stream",
    "Timings",
    "Usage",
    "complete",
    "open_stream",
]
