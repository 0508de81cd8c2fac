"""Runs blocking engine calls off the gevent hub (on its threadpool), or inline without gevent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def gevent_active() -> bool:
    """True inside a gevent-patched process (gunicorn's gevent worker)."""
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a dependency
        return False
    return monkey.is_module_patched("threading")


def run_blocking(fn: Callable[..., T], *args: Any) -> T:
    """Call `fn(*args)` where it cannot freeze other requests.

    Engine calls release the GIL but block their OS thread; on the hub's thread that would stop every
    greenlet, so under gevent they run on the hub's threadpool while the calling greenlet waits.
    """
    if gevent_active():
        import gevent

        return gevent.get_hub().threadpool.apply(fn, args)
    return fn(*args)


def size_threadpool(threads: int) -> None:
    """Give the hub's threadpool a thread per possible concurrent engine call, plus loading."""
    if gevent_active():
        import gevent

        pool = gevent.get_hub().threadpool
        if pool.maxsize < threads:
            pool.maxsize = threads


def spawn_background(fn: Callable[[], Any]) -> None:
    """Start `fn` without waiting: a greenlet under gevent, a daemon thread otherwise."""
    if gevent_active():
        import gevent

        gevent.spawn(fn)
    else:
        import threading

        threading.Thread(target=fn, name="model-loader", daemon=True).start()


class Pending:
    """A blocking call started off the hub: wait for it a while at a time (to report progress
    meanwhile), then take its result or its exception."""

    def __init__(self, done_within: Callable[[float], bool], result: Callable[[], Any]) -> None:
        self.done_within = done_within
        self.result = result


def start_blocking(fn: Callable[..., T], *args: Any) -> Pending:
    """Start `fn(*args)` as run_blocking would run it, without waiting for it."""
    if gevent_active():
        import gevent

        started = gevent.get_hub().threadpool.spawn(fn, *args)  # an AsyncResult

        def done_within(seconds: float) -> bool:
            started.wait(seconds)
            return started.ready()

        return Pending(done_within, started.get)
    from concurrent.futures import ThreadPoolExecutor, wait

    executor = ThreadPoolExecutor(1, thread_name_prefix="blocking")
    future = executor.submit(fn, *args)
    executor.shutdown(wait=False)
    return Pending(lambda seconds: bool(wait([future], seconds).done), future.result)
