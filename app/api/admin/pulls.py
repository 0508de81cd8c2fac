"""A pull's steps as NDJSON lines, for every API shell: each shell says how a step and an error look;
an error after the first line is one last line (the status is already sent)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

from flask import Response, stream_with_context

from app.api.sse import STREAM_HEADERS
from app.engine.models_admin import SUCCESS, Pull, PullStep
from app.errors import ApiError
from app.fault_errors import api_error

MIMETYPE = "application/x-ndjson"


def _line(data: dict) -> str:
    return json.dumps(data, separators=(",", ":")) + "\n"


def stream(pull: Pull, encode: Callable[[PullStep], dict], error: Callable[[ApiError], dict]) -> Response:
    """The steps as they happen, one line each."""

    def lines() -> Iterator[str]:
        try:
            for step in pull.steps():
                yield _line(encode(step))
        except Exception as failure:  # after the first byte: the error is the last line
            yield _line(error(api_error(failure)))

    return Response(stream_with_context(lines()), mimetype=MIMETYPE, headers=STREAM_HEADERS)


def last_step(pull: Pull) -> PullStep:
    """Run the pull to its end (a failure raises, with its status) and give its success step."""
    steps = list(pull.steps())
    assert steps and steps[-1].status == SUCCESS
    return steps[-1]
