"""Graceful drain: after SIGTERM the worker stops accepting, finishes what is in flight, and at the
drain bound (LLM_DRAIN_SECONDS) ends what is left with an error its clients can read."""

from __future__ import annotations

import logging
import time
from typing import Any

from app.engine.offload import spawn_background

logger = logging.getLogger(__name__)

# gunicorn's master kills the worker LLM_DRAIN_SECONDS after SIGTERM; the worker notices an empty
# pool once a second, so generations still running are ended this long before the kill.
CUT_MARGIN_SECONDS = 2.0


class Drain:
    """Readiness turns 503 at once; generations still running at the bound are cut (`shutdown`)."""

    def __init__(self, drain_seconds: float, sessions: set) -> None:
        self.drain_seconds = drain_seconds
        self._sessions = sessions
        self.draining = False

    @property
    def cut_after(self) -> float:
        return max(0.0, self.drain_seconds - CUT_MARGIN_SECONDS)

    def begin(self) -> None:
        """Called on SIGTERM in the worker (from a signal handler: only a flag and a spawn here)."""
        if self.draining:
            return
        self.draining = True
        spawn_background(self._cut_at_bound)

    def _cut_at_bound(self) -> None:
        logger.info(
            "draining: %d generations in flight; those still running in %.0fs are ended",
            len(self._sessions),
            self.cut_after,
        )
        time.sleep(self.cut_after)  # a timer (cooperative under gevent), not synchronisation
        left: list[Any] = list(self._sessions)
        if left:
            logger.warning("drain bound reached (LLM_DRAIN_SECONDS): ending %d generations", len(left))
        for session in left:
            session.interrupt("shutdown")
