"""Reads an engine stream on one pool thread and hands chunks to the gevent hub as they arrive.

One thread per stream (not one hand-off per token): on a 2-core machine every per-token thread
wake-up is time taken from the engine's matmuls. Chunks that pile up while the hub is busy are
taken together, so they go out in one write.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from typing import Any

_END = object()


def _once(callback: Callable[[], Any] | None) -> Callable[[], None]:
    """`callback` to call at most once (None: nothing)."""
    pending = [callback]

    def call() -> None:
        if pending[0] is not None:
            done, pending[0] = pending[0], None
            done()

    return call


class DirectSource:
    """Without gevent (in-process use): call the engine iterator on the caller's thread."""

    def __init__(
        self,
        iterator: Iterator[Any],
        convert: Callable[[Any], Any],
        on_first: Callable[[], Any] | None = None,
    ) -> None:
        self._iterator: Iterator[Any] | None = iterator
        self._convert = convert
        self._first = _once(on_first)  # the first chunk, an error or the end: prefill is over

    def take(self, timeout: float | None = None) -> list[Any] | None:
        """The next chunks, or None at the end; engine errors raise here. The call blocks until the
        engine answers: without gevent there is nothing else to wait for."""
        if self._iterator is None:
            return None
        try:
            response = next(self._iterator, None)
        finally:
            self._first()
        if response is None:
            self._iterator = None
            return None
        return [self._convert(response)]

    def wake(self) -> None:
        """Nothing to wake: `take` returns only with the engine's answer."""

    def cancel(self) -> None:
        self._iterator = None  # the last reference: the engine stops the sequence
        self._first()


class PumpedSource:
    """Under gevent: a pool thread iterates the engine stream; the hub waits on an async watcher."""

    def __init__(
        self,
        iterator: Iterator[Any],
        convert: Callable[[Any], Any],
        on_first: Callable[[], Any] | None = None,
    ) -> None:
        import gevent
        from gevent.event import Event

        hub = gevent.get_hub()
        self._queue: collections.deque = collections.deque()
        self._ready = Event()
        self._cancelled = False
        self._ended = False
        # Run on the hub once the engine has answered the first time (a chunk, an error or the end),
        # told by the pump thread itself: a stream cancelled before that is still in the engine's
        # queue or prefill until then.
        self._first = _once(on_first)
        self._loop = hub.loop
        # Started for the stream's whole life, so no wake-up sent from the thread is ever lost.
        self._watcher = hub.loop.async_()
        self._watcher.start(self._ready.set)
        hub.threadpool.spawn(self._pump, iterator, convert)

    def _pump(self, iterator: Iterator[Any], convert: Callable[[Any], Any]) -> None:
        """Runs on the pool thread; holds the only reference to the engine iterator."""
        answered = False
        try:
            while not self._cancelled or not answered:
                response = next(iterator, None)
                if not answered:
                    answered = True
                    self._loop.run_callback_threadsafe(self._first)
                if response is None:
                    break
                self._queue.append(convert(response))
                self._watcher.send()
        except BaseException as error:  # handed to the hub, which raises it in the request
            self._queue.append(error)
        finally:
            if not answered:
                self._loop.run_callback_threadsafe(self._first)
            del iterator  # dropping it stops the sequence in the engine
            self._queue.append(_END)
            self._watcher.send()

    def take(self, timeout: float | None = None) -> list[Any] | None:
        """The chunks that have arrived (waiting up to `timeout` seconds for one), None at the end,
        or [] when the wait ran out or `wake` was called."""
        if self._ended:
            return None
        if not self._queue:
            self._ready.clear()
            if not self._queue:
                self._ready.wait(timeout)
        taken = []
        while self._queue:
            item = self._queue.popleft()
            if item is _END:
                self._end()
                break
            if isinstance(item, BaseException):
                if taken:  # deliver what came before the error first
                    self._queue.appendleft(item)
                    break
                self._end()
                raise item
            taken.append(item)
        return None if self._ended and not taken else taken

    def wake(self) -> None:
        """End a `take` that is waiting (a deadline, a drain or a disconnect wants the stream)."""
        self._ready.set()

    def _end(self) -> None:
        self._ended = True
        self._watcher.stop()

    def cancel(self) -> None:
        """The pump stops after the engine's next chunk and drops the iterator."""
        self._cancelled = True
        if not self._ended:
            self._end()
