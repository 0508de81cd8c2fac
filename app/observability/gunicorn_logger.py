"""gunicorn's error and access logs in our format; the access line carries the generation's fields."""

from __future__ import annotations

import logging
from typing import Any

from gunicorn.glogging import Logger

from app.observability.logging import handler
from app.settings import Settings

# Keys the API layer leaves in the WSGI environ for the access line.
ENVIRON_KEY = "llm.access"


class StructuredLogger(Logger):
    """gunicorn's Logger with our handler; `access` logs one record with named fields."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        settings = Settings.from_env()
        for log in (self.error_log, self.access_log):
            log.handlers[:] = [handler(settings)]
            log.propagate = False

    def access(self, resp: Any, req: Any, environ: dict, request_time: Any) -> None:
        if not self.cfg.accesslog:
            return
        status = int(str(resp.status).split()[0]) if resp.status else 0
        headers = {k.lower(): v for k, v in (resp.headers or [])}
        fields: dict[str, Any] = {
            "method": environ.get("REQUEST_METHOD"),
            "path": environ.get("PATH_INFO"),
            "status": status,
            "duration_ms": round(request_time.total_seconds() * 1000, 2),
            "remote_addr": environ.get("REMOTE_ADDR"),
            "request_id": headers.get("x-request-id", "-"),
        }
        fields.update(environ.get(ENVIRON_KEY) or {})
        fields.setdefault("trace_id", None)
        fields.setdefault("span_id", None)
        message = f"{fields['method']} {fields['path']} {status} {fields['duration_ms']}ms"
        self.access_log.log(logging.INFO, message, extra=fields)
