"""Why a generation ends before its own finish (its deadline, the client leaving, the drain) and
what each costs the client, as our error."""

from __future__ import annotations

from app.errors import ApiError, ClientClosedRequestError, DeadlineExceededError, ShuttingDownError

# Why a generation was ended by the server rather than by its own finish.
TIMEOUT, CANCELLED, SHUTDOWN = "timeout", "cancelled", "shutdown"


def cut_error(reason: str | None, timeout_seconds: float | None) -> ApiError:
    """What a request cut for `reason` before (or instead of) an answer gets; `timeout_seconds`:
    its deadline, counted from its arrival."""
    if reason == TIMEOUT:
        return DeadlineExceededError(
            "The request's deadline (timeout field or LLM_REQUEST_TIMEOUT_SECONDS) passed, or "
            "would pass waiting for a slot, before any output",
            details={"timeout_seconds": round(timeout_seconds, 3) if timeout_seconds else None},
        )
    if reason == SHUTDOWN:
        return ShuttingDownError(
            "The server is shutting down and its drain time (LLM_DRAIN_SECONDS) ended this "
            "generation; retry on another replica",
            headers={"Retry-After": "1"},
        )
    return ClientClosedRequestError("The client closed the connection")


def draining_error() -> ShuttingDownError:
    """New work while the worker drains: in-flight work finishes, new work goes to another replica."""
    return ShuttingDownError(
        "The server is shutting down and takes no new work; retry on another replica",
        headers={"Retry-After": "1"},
    )


def gone_error() -> ClientClosedRequestError:
    """The response was closed before the end: nobody reads the rest."""
    return ClientClosedRequestError("The client closed the connection before the end")
