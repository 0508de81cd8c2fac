"""Strict JSON bodies: what Python's json module accepts but the service must refuse, refused with a
400 naming where (instead of a recursion error, a non-finite number or an unencodable string deep
inside the engine)."""

from __future__ import annotations

import json
from typing import Any, NoReturn

from flask import Request
from flask_smorest import abort
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

MAX_JSON_DEPTH = 64  # objects and arrays inside each other; a JSON schema needs far fewer


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON (numbers must be finite)")


def _where(path: list[str | int]) -> str:
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    return text.lstrip(".") or "body"


def check(value: Any) -> None:
    """Raise ValueError naming the first place nested deeper than MAX_JSON_DEPTH or holding a string
    that is not valid Unicode (a lone surrogate such as \\ud800, which no engine can take)."""
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        item, path = stack.pop()
        if len(path) > MAX_JSON_DEPTH:
            raise ValueError(f"{_where(path)}: nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, str):
            _check_text(item, path)
        elif isinstance(item, dict):
            for key, child in item.items():
                _check_text(key, path)
                stack.append((child, [*path, key]))
        elif isinstance(item, list):
            stack.extend((child, [*path, i]) for i, child in enumerate(item))


def _check_text(text: str, path: list[str | int]) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{_where(path)}: a string holds a lone surrogate (not valid Unicode)") from None


def loads(data: bytes) -> Any:
    """Parse a request body; raise ValueError with a message for the client."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"the body is not valid UTF-8 (byte {error.start})") from None
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{error.msg} (line {error.lineno}, column {error.colno})") from None
    check(value)
    return value


class StrictJsonParser(FlaskParser):
    """webargs' Flask parser with strict JSON: every body problem is a 400 (415 for a body that is
    not JSON at all), never a 500."""

    def _raw_load_json(self, req: Request) -> Any:
        if not is_json_request(req):
            if req.get_data(cache=True):
                abort(
                    415,
                    message="The body must be JSON, sent with Content-Type: application/json",
                )
            return core.missing
        data = req.get_data(cache=True)
        if not data:
            return core.missing
        try:
            return loads(data)
        except ValueError as error:
            abort(400, messages={"json": [str(error)]})
