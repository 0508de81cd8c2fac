"""Strict JSON bodies, engine panics and deadlines on a fake runner, forced tool calls closed."""

from __future__ import annotations

import json

import pytest

from app.api import sse
from app.api.functions import closed_objects, parse_forced_call
from app.api.json_body import MAX_JSON_DEPTH, loads
from tests.helpers import FakeRunner

CHAT = {"messages": [{"role": "user", "content": "Hi"}]}


class PanicException(BaseException):
    """The shape of pyo3's PanicException: a BaseException, not an Exception."""


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"\xff", "UTF-8"),
        (b'{"a": NaN}', "NaN"),
        (b'{"a": -Infinity}', "Infinity"),
        (b"[" * (MAX_JSON_DEPTH + 2) + b"]" * (MAX_JSON_DEPTH + 2), "nested"),
        (b'{"a": [{"b": "\\ud800"}]}', "a[0].b"),
        (b'{"\\udfff": 1}', "surrogate"),
        (b'{"a": 1' + b"2" * 5000 + b"}", "integer"),
    ],
)
def test_bodies_python_would_take_but_the_engine_cannot_are_refused_naming_where(body, words):
    with pytest.raises(ValueError) as refused:
        loads(body)
    assert words in str(refused.value)


def test_a_sound_body_loads():
    assert loads(b'{"prompt": "caf\\u00e9 \\ud83d\\ude00", "n": [1, 2.5, null]}') == {
        "prompt": "café 😀",
        "n": [1, 2.5, None],
    }


@pytest.mark.parametrize("at", ["submit", "first", "middle"])
def test_an_engine_panic_is_an_engine_error_and_frees_everything(make_app, at):
    app = make_app(FakeRunner(tokens=("a", "b", "c"), error=PanicException("no entry found"), error_at=at))
    client = app.test_client()
    answer = client.post("/api/chat", json=CHAT)
    assert answer.status_code == 500 and answer.get_json()["error"]["code"] == "engine_error"
    stream = client.post("/api/chat/stream", json=CHAT)
    if at == "middle":
        events = sse.parse(stream.get_data(as_text=True))
        assert events[0] == ("token", {"delta": "a"})
        name, error = events[-1]
        assert name == "error" and error["error"]["code"] == "engine_error"
        assert error["error"]["request_id"] == stream.headers["X-Request-ID"]
    else:
        assert stream.status_code == 500
    llm = app.extensions["llm"]
    assert llm.limiter.in_use == 0 and not llm.sessions
    assert all(m["active_streams"] == 0 for m in llm.pool.describe())


def test_a_request_timeout_out_of_range_is_422(client):
    for value in (0, -1, 10**9, "soon"):
        response = client.post("/api/chat", json={**CHAT, "timeout": value})
        assert response.status_code == 422 and "timeout" in response.get_json()["error"]["details"]["fields"]


def test_forced_calls_close_every_object_the_schema_leaves_open():
    schema = {
        "type": "object",
        "properties": {"place": {"type": "object", "properties": {"city": {"type": "string"}}}},
        "additionalProperties": True,
    }
    closed = closed_objects(schema)
    assert closed["additionalProperties"] is True  # said by the schema: kept
    assert closed["properties"]["place"]["additionalProperties"] is False
    assert closed_objects({"type": "object"}) == {"type": "object"}  # no properties: any object


def test_a_forced_call_cut_short_is_still_a_call():
    call, whole = parse_forced_call('{"name": "get_weather", "arguments": {"city": "Par')
    assert not whole and call.name == "get_weather" and call.arguments == '{"city": "Par'
    call, whole = parse_forced_call(json.dumps({"name": "f", "arguments": {"x": 1}}))
    assert whole and call.name == "f" and json.loads(call.arguments) == {"x": 1}
