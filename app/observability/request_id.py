"""A request id per request: taken from X-Request-ID when sane, else made; echoed in the response."""

from __future__ import annotations

import re
import uuid

from flask import Flask, g, request

from app.observability.logging import request_id_var

HEADER = "X-Request-ID"
_ACCEPTABLE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def init_app(app: Flask) -> None:
    @app.before_request
    def assign_request_id() -> None:
        incoming = request.headers.get(HEADER, "")
        g.request_id = incoming if _ACCEPTABLE.match(incoming) else uuid.uuid4().hex
        request_id_var.set(g.request_id)

    @app.after_request
    def echo_request_id(response):
        response.headers[HEADER] = g.get("request_id") or ""
        return response
