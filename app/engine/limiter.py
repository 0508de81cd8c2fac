"""The concurrency limit: a bounded semaphore over generation requests with a bounded wait."""

from __future__ import annotations

import math
import threading
import time

from app.errors import OverloadedError


class SlotLimiter:
    """At most `limit` generations at once; a request waits at most `timeout` seconds for a slot."""

    def __init__(self, limit: int, timeout: float) -> None:
        self.limit = limit
        self.timeout = timeout
        self._semaphore = threading.BoundedSemaphore(limit)
        self.in_use = 0
        self.waiting = 0

    def acquire(self) -> float:
        """Take a slot; return seconds waited; raise OverloadedError (503, Retry-After) on timeout."""
        started = time.perf_counter()
        self.waiting += 1
        try:
            granted = self._semaphore.acquire(timeout=self.timeout)
        finally:
            self.waiting -= 1
        if not granted:
            raise OverloadedError(
                f"All {self.limit} generation slots are busy (LLM_MAX_CONCURRENT_REQUESTS); "
                f"none freed within {self.timeout:g}s",
                details={"limit": self.limit},
                headers={"Retry-After": str(max(1, math.ceil(self.timeout)))},
            )
        self.in_use += 1
        return time.perf_counter() - started

    def release(self) -> None:
        self.in_use -= 1
        self._semaphore.release()
