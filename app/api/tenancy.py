"""Per-key policy that is not the slots' (app.engine.limiter): token quotas per minute and per day,
and the OpenAI-style rate-limit headers that report them."""

from __future__ import annotations

import collections
import math
import threading
import time

from flask import Flask, g

from app.errors import RateLimitedError
from app.keys_file import ApiKey

DAY_IN_MINUTES = 1440


class TokenQuotas:
    """Tokens (prompt + completion) each key used, as a log of (time, tokens) per key. A request is
    admitted while the key is under its quota; what it uses counts when it ends."""

    def __init__(self, minute_seconds: float = 60.0) -> None:
        self.minute = minute_seconds  # shortened by tests (LLM_RATE_WINDOW_SECONDS)
        self.day = minute_seconds * DAY_IN_MINUTES
        self._log: dict[str, collections.deque[tuple[float, int]]] = collections.defaultdict(
            collections.deque
        )
        self._lock = threading.Lock()

    def _windows(self, key: ApiKey) -> list[tuple[str, int, float]]:
        """(name, limit, span) of each quota the key has."""
        windows = []
        if key.tokens_per_minute:
            windows.append(("tokens_per_minute", key.tokens_per_minute, self.minute))
        if key.tokens_per_day:
            windows.append(("tokens_per_day", key.tokens_per_day, self.day))
        return windows

    def record(self, key: ApiKey | None, tokens: int) -> None:
        if key is None or not tokens or not self._windows(key):
            return
        with self._lock:
            self._log[key.name].append((time.monotonic(), tokens))

    def _state(self, key: ApiKey, limit: int, span: float, now: float) -> tuple[int, float]:
        """Tokens used within `span`, and seconds until the use falls under `limit` (0: it is)."""
        log = self._log.get(key.name, ())
        entries = [(at, tokens) for at, tokens in log if at > now - span]
        used = sum(tokens for _, tokens in entries)
        over = used - limit + 1
        for at, tokens in entries:  # oldest first: as they leave the window, use drops
            if over <= 0:
                break
            over -= tokens
            if over <= 0:
                return used, at + span - now
        return used, 0.0

    def _prune(self, key: ApiKey, now: float) -> None:
        longest = max(span for _, _, span in self._windows(key))
        log = self._log.get(key.name)
        while log and log[0][0] <= now - longest:
            log.popleft()

    def check(self, key: ApiKey | None) -> None:
        """Raise RateLimitedError (429, Retry-After, the headers) when a quota of `key` is used up."""
        if key is None or not self._windows(key):
            return
        now = time.monotonic()
        with self._lock:
            self._prune(key, now)
            for name, limit, span in self._windows(key):
                used, wait = self._state(key, limit, span, now)
                if used >= limit:
                    retry_after = max(1, math.ceil(wait))
                    raise RateLimitedError(
                        f"API key '{key.name}' used {used} of its {limit} tokens ({name}); "
                        f"retry in {retry_after}s",
                        details={"quota": name, "limit": limit, "used": used},
                        headers={"Retry-After": str(retry_after), **self._headers(key, now)},
                    )

    def headers(self, key: ApiKey | None) -> dict[str, str]:
        """X-RateLimit-*-Tokens for the key's shortest quota, as OpenAI sends them."""
        if key is None or not self._windows(key):
            return {}
        with self._lock:
            return self._headers(key, time.monotonic())

    def _headers(self, key: ApiKey, now: float) -> dict[str, str]:
        _, limit, span = self._windows(key)[0]
        used, wait = self._state(key, limit, span, now)
        log = self._log.get(key.name, ())
        oldest = next((at for at, _ in log if at > now - span), None)
        reset = wait if used >= limit else (oldest + span - now if oldest is not None else 0.0)
        return {
            "X-RateLimit-Limit-Tokens": str(limit),
            "X-RateLimit-Remaining-Tokens": str(max(0, limit - used)),
            "X-RateLimit-Reset-Tokens": f"{max(0.0, reset):.3f}s",
        }


def init_app(app: Flask, quotas: TokenQuotas) -> None:
    @app.after_request
    def quota_headers(response):
        """Every answer to a key with a quota says where it stands (a 429 has them already)."""
        for name, value in quotas.headers(g.get("api_key")).items():
            response.headers.setdefault(name, value)
        return response
