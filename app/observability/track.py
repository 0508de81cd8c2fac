"""One generation request seen by metrics, tracing and logs: started, granted a slot, finished."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from flask import g
from opentelemetry.trace import Status, StatusCode

from app.engine.types import Timings, Usage
from app.errors import (
    ApiError,
    ClientClosedRequestError,
    DeadlineExceededError,
    OverloadedError,
    ShuttingDownError,
)
from app.observability import tracing
from app.observability.gunicorn_logger import ENVIRON_KEY

logger = logging.getLogger("app.generation")


_OUTCOMES = (
    (OverloadedError, "rejected"),
    (DeadlineExceededError, "timeout"),
    (ShuttingDownError, "shutdown"),
    (ClientClosedRequestError, "cancelled"),
)


def outcome_of(error: BaseException | None) -> str:
    """success, rejected, timeout, shutdown, cancelled, client_error or server_error."""
    if error is None:
        return "success"
    for kind, outcome in _OUTCOMES:
        if isinstance(error, kind):
            return outcome
    if isinstance(error, ApiError) and error.status < 500:
        return "client_error"
    return "server_error"


@dataclass
class Combined:
    """Several choices of one request seen as one result by metrics, spans and logs."""

    usage: Usage
    timings: Timings
    finish_reason: str | None
    tokens_seen: int = 0


def combine(results: list[Any]) -> Any:
    """One result for metrics, spans and logs: the only one, or the choices' usage summed."""
    if len(results) == 1:
        return results[0]
    usages = [r.usage or Usage(0, 0) for r in results]
    return Combined(
        usage=Usage(usages[0].prompt_tokens, sum(u.completion_tokens for u in usages)),
        timings=results[0].timings,
        finish_reason=results[0].finish_reason,
        tokens_seen=sum(getattr(r, "tokens_seen", 0) for r in results),
    )


class RequestTrack:
    """Created when a generation request arrives; `finish` records it once, whatever happened."""

    def __init__(self, services: Any, endpoint: str, request: Any, environ: dict, key: str = "") -> None:
        g.llm_tracked = True  # the refusal counter in metrics.py leaves this request to us
        self._metrics = services.metrics
        self._pool = services.pool
        self._log_prompts = services.settings.log_prompts
        self.endpoint = endpoint
        self.key = key  # the API key's name ("" when the server is open), never the key
        self.request = request
        self._environ = environ
        self._started = time.perf_counter()
        self._finished = False
        self.span = tracing.start_generation_span(request.operation, request.model, request.sampling)
        if key:
            self.span.set_attribute("llm.api_key.name", key)
        context = self.span.get_span_context()
        self.trace_id = format(context.trace_id, "032x") if context.is_valid else None
        self.span_id = format(context.span_id, "016x") if context.is_valid else None

    def slot_granted(self, waited: float) -> None:
        self._metrics.queue_wait.labels(self.endpoint).observe(waited)
        self.span.set_attribute("llm.queue_seconds", waited)

    def gate_waited(self, waited: float) -> None:
        """Waited at the prefill gate (one prompt in prefill at a time per runner, CPU)."""
        self._metrics.prefill_gate_wait.labels(self.endpoint).observe(waited)

    def slot_refused(self, waited: float) -> None:
        self._metrics.queue_wait.labels(self.endpoint).observe(waited)

    def first_token(self, seconds_ago: float = 0.0) -> None:
        """The engine's first token arrived `seconds_ago`."""
        self.span.add_event("gen_ai.first_token", timestamp=time.time_ns() - int(seconds_ago * 1e9))

    def finish(
        self, result: Any = None, error: BaseException | None = None, outcome: str | None = None
    ) -> None:
        """Record metrics, close the span and log one line. `result`: a Stream or a Completion;
        `outcome` when no error says it (a deadline that ended a generation with its text so far)."""
        if self._finished:
            return
        self._finished = True
        outcome = outcome or outcome_of(error)
        duration = time.perf_counter() - self._started
        usage = getattr(result, "usage", None)
        timings = getattr(result, "timings", None)
        prompt_tokens = usage.prompt_tokens if usage else 0
        # a cancelled stream has no usage yet: count the tokens it did produce
        completion_tokens = usage.completion_tokens if usage else getattr(result, "tokens_seen", 0)
        ttft = timings.time_to_first_token_seconds if timings and completion_tokens else None
        decode = None
        if timings and timings.total_seconds and ttft is not None:
            decode = timings.total_seconds - ttft
        finish_reason = getattr(result, "finish_reason", None)
        model = self._pool.settings.canonical(self.request.model)
        self._metrics.observe(
            model=model if self._pool.knows(model) else "unknown",
            endpoint=self.endpoint,
            outcome=outcome,
            key=self.key,
            duration=duration,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            time_to_first_token=ttft,
            decode_seconds=decode,
        )
        self._close_span(outcome, error, prompt_tokens, completion_tokens, finish_reason)
        fields = {
            "model": model,
            "endpoint": self.endpoint,
            "outcome": outcome,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "finish_reason": finish_reason,
            "api_key": self.key or None,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
        }
        self._environ[ENVIRON_KEY] = fields
        extra = {**fields, "duration_ms": round(duration * 1000, 2)}
        if ttft is not None:
            extra["time_to_first_token_ms"] = round(ttft * 1000, 2)
        if self._log_prompts:
            extra["prompt"] = (
                self.request.prompt if self.request.prompt is not None else list(self.request.messages)
            )
        level = logging.ERROR if outcome == "server_error" else logging.INFO
        if error is not None and outcome != "success":
            extra["error_code"] = getattr(error, "code", type(error).__name__)
        logger.log(
            level,
            "generation %s: %s %s tokens in %.0f ms",
            outcome,
            model,
            completion_tokens,
            duration * 1000,
            extra=extra,
        )

    def _close_span(
        self, outcome: str, error: BaseException | None, prompt: int, completion: int, reason: str | None
    ) -> None:
        span = self.span
        span.set_attribute("gen_ai.usage.input_tokens", prompt)
        span.set_attribute("gen_ai.usage.output_tokens", completion)
        if reason:
            span.set_attribute("gen_ai.response.finish_reasons", [reason])
        span.set_attribute("llm.outcome", outcome)
        if outcome == "server_error":
            span.set_status(Status(StatusCode.ERROR, str(error)[:200]))
        if isinstance(error, ApiError):
            span.set_attribute("error.type", error.code)
        span.end()
