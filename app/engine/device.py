"""Which device the engine runs on, and the engine settings chosen for it."""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from app.catalog_file import CatalogEntry
from app.engine.catalog import ModelSource
from app.settings import Settings


@lru_cache(maxsize=1)
def engine_has_cuda() -> bool:
    """True when the installed mistralrs build links CUDA (candle's `cudarc` is inside it)."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("mistralrs")
    except ImportError:
        return False
    if spec is None or not spec.submodule_search_locations:
        return False
    for location in spec.submodule_search_locations:
        for library in Path(location).glob("*.so"):
            with (
                library.open("rb") as handle,
                mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as m,
            ):
                if m.find(b"cudarc") != -1:
                    return True
    return False


def gpu_present() -> bool:
    return os.path.exists("/proc/driver/nvidia/gpus") or os.path.exists("/dev/nvidiactl")


def detect_device() -> tuple[str, str]:
    """(device, why): the engine uses CUDA by itself when its build has it and a GPU is present."""
    cuda_build, gpu = engine_has_cuda(), gpu_present()
    if cuda_build and gpu:
        return "cuda", "CUDA build of mistralrs and an NVIDIA GPU present"
    if not cuda_build:
        return "cpu", "the installed mistralrs build has no CUDA support"
    return "cpu", "no NVIDIA GPU present"


@dataclass(frozen=True)
class EngineConfig:
    """Engine options for one model, with the reason each was chosen (shown in /api/llms and logs)."""

    device: str
    in_situ_quant: str | None
    max_seqs: int
    prefix_cache_n: int
    reasons: tuple[str, ...]
    dtype: str = "auto"
    chat_template: str | None = None  # a Jinja file, or the template text (catalog)
    max_context: int | None = None  # a cap below the model's own context length (catalog)
    replicas: int = 1  # runners of the model, each taking its own requests
    serial_prefill: bool = False  # admit one prompt at a time (CPU, max_seqs > 1): see choose_config
    prefix_cache_mb: int = 0  # the server trims the engine's prefix cache past this (CPU); 0: never

    def as_dict(self) -> dict:
        return {
            "device": self.device,
            "in_situ_quant": self.in_situ_quant,
            "dtype": self.dtype,
            "max_seqs": self.max_seqs,
            "prefix_cache_n": self.prefix_cache_n,
            "prefix_cache_mb": self.prefix_cache_mb,
            "chat_template": "catalog" if self.chat_template else "model",
            "max_context": self.max_context,
            "replicas": self.replicas,
            "reasons": list(self.reasons),
        }


def choose_config(
    settings: Settings, source: ModelSource, device: str, why: str, entry: CatalogEntry | None = None
) -> EngineConfig:
    """Fastest measured settings per device unless the model's catalog entry, LLM_IN_SITU_QUANT or
    LLM_MAX_SEQS override them (in that order)."""
    reasons = [f"device {device}: {why}"]
    isq_setting = settings.in_situ_quant
    if entry is not None and entry.in_situ_quant:
        isq = None if entry.in_situ_quant == "none" else entry.in_situ_quant
        isq_reason = f"in-situ quantization {entry.in_situ_quant} (catalog entry)"
    elif isq_setting.lower() == "none":
        isq, isq_reason = None, "in-situ quantization off (LLM_IN_SITU_QUANT=none)"
    elif isq_setting.lower() != "auto":
        isq, isq_reason = isq_setting, f"in-situ quantization {isq_setting} (LLM_IN_SITU_QUANT)"
    elif device == "cpu":
        isq = "Q8_0"
        isq_reason = "in-situ quantization Q8_0: the fastest weight type measured on CPU"
    else:
        isq, isq_reason = None, "weights run in their own type on CUDA"
    reasons.append(isq_reason)
    if entry is not None and entry.max_seqs:
        max_seqs, seq_reason = entry.max_seqs, f"max_seqs {entry.max_seqs} (catalog entry)"
    elif settings.max_seqs:
        max_seqs, seq_reason = settings.max_seqs, f"max_seqs {settings.max_seqs} (LLM_MAX_SEQS)"
    elif device == "cpu":
        max_seqs = min(32, settings.max_concurrent_requests)
        seq_reason = (
            f"max_seqs {max_seqs}: the engine interleaves the decoding of concurrent requests, so each "
            "gets its first token without waiting for whole answers"
        )
    else:
        max_seqs = min(32, settings.max_concurrent_requests)
        seq_reason = f"max_seqs {max_seqs}: batching on CUDA, bounded by LLM_MAX_CONCURRENT_REQUESTS"
    reasons.append(seq_reason)
    serial_prefill = device == "cpu" and max_seqs > 1
    if serial_prefill:
        reasons.append(
            "one prompt in prefill at a time: on CPU the engine fails a batch of prompts of equal "
            "length (its quantized lm_head gets a non-contiguous input), so the server admits the next "
            "prompt once the previous one has its first token"
        )
    prefix_cache_n, cache_reason = _prefix_cache(settings, device)
    reasons.append(cache_reason)
    prefix_cache_mb = settings.prefix_cache_mb if device == "cpu" and prefix_cache_n else 0
    if device == "cpu":
        reasons.append(f"engine threads: all {os.cpu_count()} cores (the engine's default, fastest measured)")
    dtype = entry.dtype if entry is not None and entry.dtype else "auto"
    if dtype != "auto":
        reasons.append(f"dtype {dtype} (catalog entry)")
    template = entry.chat_template if entry is not None else None
    if template:
        reasons.append("chat template from the catalog entry")
    max_context = entry.max_context if entry is not None else None
    if max_context:
        reasons.append(f"context capped at {max_context} tokens (catalog entry)")
    replicas = settings.model_replicas
    if replicas > 1:
        reasons.append(
            f"{replicas} runners of the model (LLM_MODEL_REPLICAS): concurrent requests start at once "
            "on their own runner, sharing the cores, at one copy of the weights each"
        )
    return EngineConfig(
        device,
        isq,
        max_seqs,
        prefix_cache_n,
        tuple(reasons),
        dtype,
        template,
        max_context,
        replicas,
        serial_prefill,
        prefix_cache_mb,
    )


def _prefix_cache(settings: Settings, device: str) -> tuple[int, str]:
    """The engine's prefix cache size. On CPU the engine never evicts it (it counts only entries on a
    GPU), so the server bounds it: past LLM_PREFIX_CACHE_MB per runner it is emptied and its hot
    prefixes warmed again (app.engine.prefix_trim)."""
    size = 16 if settings.prefix_cache_n is None else settings.prefix_cache_n
    if not size:
        return 0, "prefix cache off (LLM_PREFIX_CACHE_N=0)"
    reuse = f"prefix cache of {size} sequences: recurring system prompts and earlier turns are reused"
    if device != "cpu":
        return size, reuse
    if not settings.prefix_cache_mb:
        return size, reuse + "; unbounded on CPU (LLM_PREFIX_CACHE_MB=0): memory grows with every generation"
    return size, (
        f"{reuse}; on CPU, where the engine never evicts, the server empties it past "
        f"{settings.prefix_cache_mb} MB per runner (LLM_PREFIX_CACHE_MB) and warms the hot prefixes again"
    )
