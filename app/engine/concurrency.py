"""The concurrency core: one `Replica` per runner owns its submit lock, its prefill gate and every
blocking call into the runner. The rules, in one place:

- **Counters are hub-only.** `active_streams`, a model's `leases`, the limiter's counts and the prefix
  cache's account are touched only by greenlets on the gevent hub, which take turns: a
  read-modify-write between two switches is atomic. Pool threads never touch them; the pump thread
  (app.engine.pump) reaches the hub only through `loop.run_callback_threadsafe` and an async watcher.
- **Blocking calls run off the hub** (`run_blocking`): a runner call blocks its OS thread, and on the
  hub's thread that would stop every request. They hold the submit lock: the runner is not re-entrant
  ("Already borrowed"). A streaming submission holds it only until the engine returns the iterator.
- **Lock order: the prefill gate, then the submit lock.** The gate (CPU with max_seqs > 1) admits one
  prompt into prefill at a time, because the engine fails a batched prefill of equal-length prompts
  on CPU. `enter_gate` takes it; the pump thread's first answer from the engine (a chunk, an error or
  the end) releases it, on the hub, so a stream cancelled in the engine's queue still holds it until
  the engine has seen it. A raw completion and a prefix cache trim hold it for their whole call.
- **Which waits end early.** The slot wait and the first-token wait honour the session's wake (a
  disconnect, a deadline, a drain). The gate's wait does not end early, but `enter_gate` checks the
  request's `abandoned()` once it has the gate: a request whose client left is never submitted. The
  submit lock is held for single calls only, so its wait is bounded by one call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from greenlet import GreenletExit

from app.engine.offload import run_blocking

T = TypeVar("T")
# A closed generator, a killed greenlet, an exiting process: never an engine failure, always re-raised.
NOT_FAILURES = (GeneratorExit, GreenletExit, KeyboardInterrupt, SystemExit)


@dataclass
class Replica:
    """One runner of a model. A model has LLM_MODEL_REPLICAS of them, each taking its own requests."""

    runner: Any
    submit_lock: Any = field(default_factory=lambda: threading.Lock())
    active_streams: int = 0  # hub-only
    prefill_gate: Any = None  # held from a prompt's submission to its first token (serial_prefill)
    prefix_cache: Any = None  # app.engine.prefix_cache.PrefixCacheAccount (CPU, cache on)
    waiting_at_gate: int = 0  # hub-only: requests taken (in active_streams) not yet past the gate
    idle: Any = field(default_factory=lambda: threading.Event())  # set when nothing runs in the engine

    @property
    def running(self) -> int:
        """Generations past the gate: submitted to the engine, or about to be."""
        return self.active_streams - self.waiting_at_gate

    def wait_idle(self) -> None:
        """Until no generation runs in the engine (the caller holds the gate: none is submitted)."""
        while self.running > 0:
            self.idle.clear()
            if self.running > 0:
                self.idle.wait()

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """A blocking call into the runner: under the submit lock, off the hub."""
        with self.submit_lock:
            return run_blocking(fn, *args)

    def enter_gate(self, abandoned: Callable[[], bool] | None = None) -> float | None:
        """Wait for the prefill gate (when the runner has one); the seconds waited, or None when
        `abandoned()` turned true meanwhile (the gate is then given back at once)."""
        started = time.perf_counter()
        if self.prefill_gate is None:
            return 0.0
        self.waiting_at_gate += 1
        try:
            self.prefill_gate.acquire()
        finally:
            self.waiting_at_gate -= 1
        if abandoned is not None and abandoned():
            self.prefill_gate.release()
            return None
        return time.perf_counter() - started

    def leave_gate(self) -> None:
        if self.prefill_gate is not None:
            self.prefill_gate.release()

    @property
    def gate_release(self) -> Callable[[], None] | None:
        """What the pump calls at the engine's first answer (None: no gate)."""
        return self.prefill_gate.release if self.prefill_gate is not None else None
