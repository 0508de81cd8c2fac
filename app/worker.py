"""gunicorn's gevent worker with two additions: SIGTERM starts the drain (readiness 503, generations
cut at the bound with an error event), and errors gunicorn answers itself (a malformed request line,
headers too large or malformed) get the JSON envelope instead of an HTML page."""

from __future__ import annotations

import json
from typing import Any

from gunicorn import util
from gunicorn.workers.ggevent import GeventWorker

_CODES = {400: "bad_request", 403: "forbidden", 414: "uri_too_long", 431: "headers_too_large"}
_MESSAGES = {
    400: "Malformed HTTP request (request line or a header is invalid)",
    403: "Request forbidden",
    414: "The request line is too long",
    431: "The request's header fields are too large or too many",
    500: "Internal server error",
    501: "Unsupported transfer coding",
}


def write_json_error(sock: Any, status: int, reason: str, message: str) -> None:
    """gunicorn's `write_error`, in our envelope. The message is ours: gunicorn's would echo the
    offending header, which a client could use to reflect text."""
    body = json.dumps(
        {
            "error": {
                "status": status,
                "code": _CODES.get(status, "http_error" if status < 500 else "internal_error"),
                "message": _MESSAGES.get(status, reason),
            }
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"X-Content-Type-Options: nosniff\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


class InferenceWorker(GeventWorker):
    def init_process(self) -> None:
        util.write_error = write_json_error  # this process is ours alone: the worker's own errors
        super().init_process()

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        services = getattr(self.wsgi, "extensions", {}).get("llm") if self.wsgi else None
        if services is not None:
            # a signal handler may run inside the event loop: only flags and spawns here, no I/O
            services.drain.begin()
            services.store.work.begin_drain()
