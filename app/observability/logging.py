"""Log formatting: one JSON object per line (LOG_FORMAT=json) or readable lines (pretty)."""

from __future__ import annotations

import logging
import sys

from app.settings import Settings

PRETTY_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"


def formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        return JsonFormatter(
            JSON_FIELDS,
            rename_fields={"asctime": "timestamp", "levelname": "level", "name": "logger"},
        )
    return logging.Formatter(PRETTY_FORMAT)


def configure(settings: Settings) -> None:
    """Send the root logger (and so gunicorn's and ours) to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(settings.log_format))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
