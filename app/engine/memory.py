"""The worker's memory bound (LLM_MAX_WORKER_MEMORY_MB): past it, idle models whose engine keeps a
prefix cache are recycled (runner dropped and created again), which frees what the cache holds."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
from collections.abc import Callable
from functools import lru_cache

from app.engine.offload import spawn_background

logger = logging.getLogger(__name__)
MB = 1024 * 1024
# After a recycle that could not get under the bound, the next waits for this much more growth.
_REGROWTH_BYTES = 64 * MB


def rss_bytes() -> int:
    """The process's resident memory."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def trim() -> None:
    """Hand memory that was freed back to the system (glibc keeps it otherwise)."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


class MemoryBound:
    """Checked after each generation; recycles in the background, one recycle at a time."""

    def __init__(self, limit_mb: int, recycle: Callable[[], list[str]]) -> None:
        self.limit = limit_mb * MB
        self._recycle = recycle
        self._busy = False
        self._floor = 0  # RSS after the last recycle
        self.recycles = 0

    def check(self) -> None:
        if not self.limit or self._busy:
            return
        # A recycle that got under the bound re-arms it; one that could not waits for more growth.
        threshold = self.limit if self._floor <= self.limit else self._floor + _REGROWTH_BYTES
        if rss_bytes() <= threshold:
            return
        self._busy = True
        spawn_background(self._run)

    def _run(self) -> None:
        try:
            before = rss_bytes()
            recycled = self._recycle()
            after = rss_bytes()
            self._floor = after
            if recycled:
                self.recycles += 1
            level = logging.INFO if after <= self.limit else logging.WARNING
            logger.log(
                level,
                "worker memory %d MB over LLM_MAX_WORKER_MEMORY_MB=%d: recycled %s, now %d MB",
                before // MB,
                self.limit // MB,
                ", ".join(recycled) or "nothing (no idle model with a prefix cache)",
                after // MB,
            )
        finally:
            self._busy = False
