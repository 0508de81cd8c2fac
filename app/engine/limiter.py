"""The concurrency limit: generation slots handed to waiters in arrival order, with a bounded queue,
a bounded wait, and an honest estimate of how long a wait would be."""

from __future__ import annotations

import collections
import math
import threading
from dataclasses import dataclass

from app.errors import OverloadedError

# Weight of the newest slot hold time in the running mean the estimates use.
_SMOOTHING = 0.2


@dataclass(eq=False)
class _Waiter:
    wake: threading.Event
    granted: bool = False


class SlotLimiter:
    """At most `limit` generations at once; at most `max_waiting` requests queue for a slot, each for
    at most `timeout` seconds. A freed slot goes straight to the oldest waiter."""

    def __init__(self, limit: int, timeout: float, max_waiting: int | None = None) -> None:
        self.limit = limit
        self.timeout = timeout
        self.max_waiting = 4 * limit if max_waiting is None else max_waiting
        self.in_use = 0
        self._waiters: collections.deque[_Waiter] = collections.deque()
        self._lock = threading.Lock()
        self.mean_hold_seconds = 0.0  # running mean of how long a request holds a slot

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def estimated_wait(self, position: int) -> float:
        """Seconds until the request at queue `position` (1 = next) would get a slot, from the
        measured slot hold time: `position` holders must leave first, `limit` at a time."""
        return position * self.mean_hold_seconds / self.limit

    def acquire(self, wait: float, wake: threading.Event) -> bool:
        """Take a slot, queueing up to `wait` seconds; `wake` (set by someone else: a disconnect, a
        deadline, a drain) ends the wait early. True when granted; raise OverloadedError when the
        queue is full or the wait could not end in time; False when woken without a slot."""
        with self._lock:
            if self.in_use < self.limit and not self._waiters:
                self.in_use += 1
                return True
            position = len(self._waiters) + 1
            if position > self.max_waiting or self.estimated_wait(position) > wait > 0:
                raise self.overloaded(position, queued=False)
            waiter = _Waiter(wake)
            self._waiters.append(waiter)
        wake.wait(wait)
        with self._lock:
            if waiter.granted:
                return True
            self._waiters.remove(waiter)
        if wake.is_set():
            return False
        raise self.overloaded(self.waiting + 1, queued=True)

    def release(self, held_seconds: float) -> None:
        """Give the slot to the oldest waiter, or back to the pool."""
        with self._lock:
            if self.mean_hold_seconds:
                self.mean_hold_seconds += _SMOOTHING * (held_seconds - self.mean_hold_seconds)
            else:
                self.mean_hold_seconds = held_seconds
            if self._waiters:
                waiter = self._waiters.popleft()
                waiter.granted = True  # the slot passes over without being freed
                waiter.wake.set()
            else:
                self.in_use -= 1

    def overloaded(self, position: int, *, queued: bool) -> OverloadedError:
        expected = self.estimated_wait(position)
        retry_after = max(1, math.ceil(expected))
        if queued:
            why = f"none freed within {self.timeout:g}s (LLM_QUEUE_TIMEOUT_SECONDS)"
        elif position > self.max_waiting:
            why = f"the queue is full ({self.max_waiting} waiting, LLM_MAX_QUEUED_REQUESTS)"
        else:
            why = f"the expected wait of {expected:.1f}s is longer than this request may wait"
        return OverloadedError(
            f"All {self.limit} generation slots are busy (LLM_MAX_CONCURRENT_REQUESTS): {why}; "
            f"this request would be number {position} in the queue; retry in {retry_after}s",
            details={
                "limit": self.limit,
                "waiting": self.waiting,
                "queue_position": position,
                "estimated_wait_seconds": round(expected, 2),
            },
            headers={"Retry-After": str(retry_after)},
        )
