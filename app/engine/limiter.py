"""The concurrency limit: generation slots shared fairly between API keys, with a bounded queue, a
bounded wait, and an honest estimate of how long a wait would be.

A freed slot goes to the waiting key with the fewest requests running (among equals, the key served
longest ago: round-robin), first come first served within a key: one client flooding the server
cannot starve another. The queue's bound is fair too: when it is full, a newcomer whose key has fewer
waiting than the key with the most takes the place of that key's newest waiter, which is refused
(503 with Retry-After) as if it had arrived to a full queue.
Without keys every request is the same key, and the order is plain arrival order. A key's
`priority` (the keys file) comes before all of that: a waiter of a higher priority goes first.

Background work (batch items, background responses) is the lowest lane: it takes a slot only when no
interactive request waits, holds at most `limit - 1` slots (so one is always free for an interactive
request that arrives), and its waiters are outside the interactive queue and its bound. An interactive
request that takes or waits for a slot while background work runs preempts it (`on_interactive`: the
work loop ends it and runs it again later, as vLLM's priority scheduling recomputes a preempted
sequence). The work loop starts new background work only once interactive requests have been quiet a
moment (`interactive_quiet`): on CPU every running sequence shares the engine's steps, so background
work that keeps starting would slow each person's first token.
"""

from __future__ import annotations

import collections
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from app.engine.faults import QUEUE_FULL, QUEUE_TIMEOUT, WAIT_TOO_LONG, KeyShareUsed, SlotsBusy

logger = logging.getLogger(__name__)

# Weight of the newest slot hold time in the running mean the estimates use.
_SMOOTHING = 0.2
_arrivals = itertools.count()


@dataclass(eq=False)
class _Waiter:
    wake: threading.Event
    key: str
    arrival: int = field(default_factory=lambda: next(_arrivals))
    granted: bool = False
    displaced: bool = False  # its place went to a newcomer of a key with fewer waiting
    priority: int = 0


class SlotLimiter:
    """At most `limit` generations at once; at most `max_waiting` requests queue for a slot, each for
    at most `timeout` seconds."""

    def __init__(self, limit: int, timeout: float, max_waiting: int | None = None) -> None:
        self.limit = limit
        self.timeout = timeout
        self.max_waiting = 4 * limit if max_waiting is None else max_waiting
        self.in_use = 0
        self.waiting = 0
        self.running: collections.Counter[str] = collections.Counter()  # per key
        self._queues: dict[str, collections.deque[_Waiter]] = collections.defaultdict(collections.deque)
        self._served: dict[str, int] = {}  # key -> when it last got a slot (a shared counter)
        self.background_limit = max(1, limit - 1)
        self.background_running = 0
        self._background: collections.deque[_Waiter] = collections.deque()
        self.interactive_at = 0.0  # monotonic time of the last interactive grant or release
        # told when an interactive request takes or waits for a slot while background work holds some
        self.on_interactive: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self.mean_hold_seconds = 0.0  # running mean of how long a request holds a slot

    def estimated_wait(self, position: int) -> float:
        """Seconds until the request at queue `position` (1 = next) would get a slot, from the
        measured slot hold time: `position` holders must leave first, `limit` at a time."""
        return position * self.mean_hold_seconds / self.limit

    def held_by(self, key: str) -> int:
        """Slots `key` holds or waits for."""
        return self.running[key] + len(self._queues.get(key, ()))

    def acquire(
        self,
        wait: float,
        wake: threading.Event,
        key: str = "",
        share: int | None = None,
        *,
        background: bool = False,
        priority: int = 0,
    ) -> bool:
        """Take a slot for `key`, queueing up to `wait` seconds; `wake` (set by someone else: a
        disconnect, a deadline, a drain) ends the wait early. True when granted; False when woken
        without a slot. Raise KeyShareUsed past the key's `share`, SlotsBusy when the
        queue is full or the wait could not end in time."""
        if background:
            return self._acquire_background(wait, wake, key, share)
        with self._lock:
            if share is not None and self.held_by(key) >= share:
                raise self.rate_limited(key, share)
            preempt = self.background_running > 0 and self.on_interactive is not None
            if self.in_use < self.limit and not self.waiting:
                self.in_use += 1
                self._grant(key)
                self.interactive_at = time.monotonic()
                granted = True
            else:
                granted = False
        if preempt:
            self.on_interactive()
        if granted:
            return True
        with self._lock:
            # Telling the preemption may switch greenlets: another request of this key may have taken
            # its share meanwhile.
            if share is not None and self.held_by(key) >= share:
                raise self.rate_limited(key, share)
            if self.in_use < self.limit and not self.waiting:  # freed while the preemption was told
                self.in_use += 1
                self._grant(key)
                self.interactive_at = time.monotonic()
                return True
            position = self.waiting + 1
            if position > self.max_waiting and self._displace(key):
                position = self.waiting + 1
            # Refused at once only when even the soonest wait for this place is too long: the
            # holders may be about to finish, so the first place ahead counts as free.
            if position > self.max_waiting or self.estimated_wait(position - 1) > wait > 0:
                raise self.overloaded(position, queued=False)
            waiter = _Waiter(wake, key, priority=priority)
            self._queues[key].append(waiter)
            self.waiting += 1
        try:
            wake.wait(wait)
        except BaseException:  # the waiting greenlet was killed: leave no waiter and no slot behind
            with self._lock:
                self._leave(waiter)
            raise
        with self._lock:
            if waiter.granted:
                return True
            if waiter.displaced:  # already out of the queue
                raise self.overloaded(self.max_waiting + 1, queued=False)
            self._queues[key].remove(waiter)
            self.waiting -= 1
        if wake.is_set():
            return False
        raise self.overloaded(self.waiting + 1, queued=True)

    def _acquire_background(self, wait: float, wake: threading.Event, key: str, share: int | None) -> bool:
        with self._lock:
            if share is not None and self.held_by(key) >= share:
                raise self.rate_limited(key, share)
            if self._background_may_start() and not self._background:
                self.in_use += 1
                self.background_running += 1
                self._grant(key)
                return True
            waiter = _Waiter(wake, key)
            self._background.append(waiter)
        try:
            wake.wait(wait)
        except BaseException:
            with self._lock:
                self._leave(waiter, background=True)
            raise
        with self._lock:
            if waiter.granted:
                return True
            self._background.remove(waiter)
        return False

    def _background_may_start(self) -> bool:
        return (
            self.in_use < self.limit and not self.waiting and self.background_running < self.background_limit
        )

    def _leave(self, waiter: _Waiter, background: bool = False) -> None:
        """A waiter that will never use its place: out of the queue, or its slot handed on."""
        if waiter.granted:
            self._release_locked(0.0, waiter.key, measured=False, background=background)
        elif background:
            self._background.remove(waiter)
        elif not waiter.displaced:
            self._queues[waiter.key].remove(waiter)
            self.waiting -= 1

    def _displace(self, key: str) -> bool:
        """Make room in a full queue for `key`: the newest waiter of the key with the most waiting
        leaves, if that key has more waiting than `key`. True when a place was freed."""
        longest = max(self._queues.values(), key=len, default=None)
        if not longest or len(longest) <= len(self._queues.get(key, ())):
            return False
        waiter = longest.pop()
        waiter.displaced = True
        self.waiting -= 1
        waiter.wake.set()
        return True

    def release(self, held_seconds: float, key: str = "", *, background: bool = False) -> None:
        """Give the slot to the next waiter by fair share (interactive first), or back to the pool."""
        with self._lock:
            self._release_locked(held_seconds, key, measured=not background, background=background)

    def _release_locked(
        self, held_seconds: float, key: str, measured: bool = True, background: bool = False
    ) -> None:
        if self.running[key] <= 0 or self.in_use <= 0:  # a release without its grant: never counted
            logger.error("slot released for key %r that holds none: ignored", key)
            return
        if background:
            self.background_running -= 1
        else:
            self.interactive_at = time.monotonic()
        if measured:
            if self.mean_hold_seconds:
                self.mean_hold_seconds += _SMOOTHING * (held_seconds - self.mean_hold_seconds)
            else:
                self.mean_hold_seconds = held_seconds
        self.running[key] -= 1
        if not self.running[key]:
            del self.running[key]
        waiting = [queue for queue in self._queues.values() if queue]
        if not waiting:
            if self._background and self.background_running < self.background_limit:
                waiter = self._background.popleft()
                self.background_running += 1
                self._grant(waiter.key)
                waiter.granted = True
                waiter.wake.set()
                return
            self.in_use -= 1
            return
        queue = min(waiting, key=self._turn)
        waiter = queue.popleft()
        self.waiting -= 1
        self._grant(waiter.key)
        waiter.granted = True  # the slot passes over without being freed
        waiter.wake.set()

    def _turn(self, queue: collections.deque[_Waiter]) -> tuple[int, int, int, int]:
        """Whose turn: the highest priority, then fewest running, then the key served longest ago
        (round-robin), then the oldest waiter."""
        key = queue[0].key
        return -queue[0].priority, self.running[key], self._served.get(key, -1), queue[0].arrival

    def interactive_quiet(self, seconds: float) -> bool:
        """No interactive request holds or waits for a slot, nor did for `seconds`."""
        busy = self.in_use - self.background_running > 0 or self.waiting > 0
        return not busy and time.monotonic() - self.interactive_at >= seconds

    def _grant(self, key: str) -> None:
        self.running[key] += 1
        self._served[key] = next(_arrivals)

    def rate_limited(self, key: str, share: int) -> KeyShareUsed:
        return KeyShareUsed(key, share, retry_after=max(1, math.ceil(self.mean_hold_seconds)))

    def overloaded(self, position: int, *, queued: bool) -> SlotsBusy:
        expected = self.estimated_wait(position)
        if queued:
            why = QUEUE_TIMEOUT
        elif position > self.max_waiting:
            why = QUEUE_FULL
        else:
            why = WAIT_TOO_LONG
        return SlotsBusy(
            why,
            limit=self.limit,
            waiting=self.waiting,
            position=position,
            estimated_wait=expected,
            retry_after=max(1, math.ceil(expected)),
            timeout=self.timeout,
            max_waiting=self.max_waiting,
        )
