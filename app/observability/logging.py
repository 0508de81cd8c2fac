"""Log formatting shared by our code, gunicorn and the engine: one JSON object per line
(LOG_FORMAT=json) or readable lines (pretty), each carrying the request id, trace id and span id."""

from __future__ import annotations

import contextvars
import logging
import sys

from opentelemetry import trace

from app.settings import Settings

PRETTY_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s]: %(message)s"
JSON_FIELDS = "%(levelname)s %(name)s %(message)s %(request_id)s %(trace_id)s %(span_id)s"

# Set when a request arrives; gevent keeps it per greenlet, so stream generators still see it.
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class ContextFilter(logging.Filter):
    """Adds request_id, trace_id and span_id to every record (unless the caller passed them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        if not hasattr(record, "trace_id"):
            context = trace.get_current_span().get_span_context()
            valid = context.is_valid
            record.trace_id = format(context.trace_id, "032x") if valid else None
            record.span_id = format(context.span_id, "016x") if valid else None
        return True


def formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        return JsonFormatter(
            JSON_FIELDS,
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp=True,  # ISO 8601, UTC
        )
    return logging.Formatter(PRETTY_FORMAT)


class StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (test runners swap it)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def handler(settings: Settings) -> logging.Handler:
    out = StderrHandler()
    out.setFormatter(formatter(settings.log_format))
    out.addFilter(ContextFilter())
    return out


def configure(settings: Settings) -> None:
    """Send the root logger (and with it ours and the engine bridge's) to stderr in the chosen format."""
    root = logging.getLogger()
    root.handlers[:] = [handler(settings)]
    root.setLevel(settings.log_level)
