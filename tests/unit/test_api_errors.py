"""Schema validation and error mapping through the real app on a fake runner."""

from __future__ import annotations

import pytest

from app.api import sse
from tests.helpers import FakeRunner

GOOD = {"prompt": "Hi", "max_tokens": 8}


def error_of(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()["error"]
    assert body["status"] == status and body["code"] == code
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


def test_malformed_json_is_400(client):
    response = client.post("/api/generate", data='{"prompt": ', content_type="application/json")
    body = error_of(response, 400, "bad_request")
    assert "Malformed JSON" in body["message"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", 2.5),
        ("temperature", "hot"),
        ("top_p", 0),
        ("top_p", 1.5),
        ("max_tokens", 0),
        ("max_tokens", 1.5),
        ("top_k", 0),
        ("stop", 5),
        ("stop", [""]),
        ("stop", ["a"] * 9),
        ("min_p", 1.5),
        ("presence_penalty", 3),
        ("frequency_penalty", -3),
        ("repetition_penalty", 0),
        ("logit_bias", {"abc": 1}),
        ("logit_bias", {"42": 500}),
        ("seed", "x"),
    ],
)
def test_out_of_range_or_wrong_type_is_422_naming_the_field(client, field, value):
    body = error_of(client.post("/api/generate", json={**GOOD, field: value}), 422, "validation_error")
    assert body["message"].startswith(f"Invalid request: {field}:")
    assert field in body["details"]["fields"]


def test_format_and_regex_are_checked(client):
    both = client.post("/api/generate", json={**GOOD, "format": "json", "regex": "a+"})
    assert error_of(both, 422, "validation_error")["message"].startswith("format:")
    wrong = client.post("/api/generate", json={**GOOD, "format": 5})
    assert error_of(wrong, 422, "validation_error")["message"].startswith("format:")
    assert client.post("/api/generate", json={**GOOD, "format": {"type": "object"}}).status_code == 200


def test_missing_prompt_and_unknown_field_are_named(client):
    body = error_of(client.post("/api/generate", json={"promt": "typo"}), 422, "validation_error")
    assert set(body["details"]["fields"]) == {"prompt", "promt"}


@pytest.mark.parametrize("messages", [[], [{"role": "robot", "content": "x"}], [{"role": "user"}]])
def test_bad_messages_are_422(client, messages):
    body = error_of(client.post("/api/chat", json={"messages": messages}), 422, "validation_error")
    assert "messages" in body["details"]["fields"]


def test_max_tokens_above_the_limit_names_the_limit(make_app):
    client = make_app(LLM_MAX_TOKENS_LIMIT="100", LLM_DEFAULT_MAX_TOKENS="50").test_client()
    body = error_of(
        client.post("/api/generate", json={"prompt": "x", "max_tokens": 101}), 422, "validation_error"
    )
    assert "100" in body["message"] and "LLM_MAX_TOKENS_LIMIT" in body["message"]


def test_seed_needs_temperature_zero(client):
    body = error_of(
        client.post("/api/generate", json={**GOOD, "seed": 7, "temperature": 0.5}), 422, "validation_error"
    )
    assert body["message"].startswith("seed:")
    assert client.post("/api/generate", json={**GOOD, "seed": 7, "temperature": 0}).status_code == 200


def test_unknown_model_is_404_listing_the_allowed(client):
    body = error_of(
        client.post("/api/chat", json={"model": "x/y", "messages": [{"role": "user", "content": "a"}]}),
        404,
        "model_not_found",
    )
    assert body["details"]["allowed"] == ["test/fake"]
    assert "test/fake" in body["message"]


def test_unknown_route_and_method_use_the_envelope(client):
    error_of(client.get("/api/nothing"), 404, "not_found")
    error_of(client.get("/api/generate"), 405, "method_not_allowed")


def test_context_too_long_is_400_with_both_numbers(make_app):
    runner = FakeRunner(
        error=ValueError(
            "Prompt sequence length is greater than 2048, perhaps consider using `truncate_sequence`?"
        )
    )
    client = make_app(runner).test_client()
    body = error_of(client.post("/api/generate", json={"prompt": "a b c d"}), 400, "context_length_exceeded")
    assert body["details"] == {"prompt_tokens": 4, "context_length": 2048}
    assert "4 tokens" in body["message"] and "2048" in body["message"]


def test_missing_chat_template_is_400(make_app):
    runner = FakeRunner(
        error=ValueError("Received messages for a model which does not have a chat template.")
    )
    client = make_app(runner).test_client()
    body = error_of(
        client.post("/api/chat/stream", json={"messages": [{"role": "user", "content": "a"}]}),
        400,
        "chat_template_missing",
    )
    assert "no chat template" in body["message"]


def test_unrecognised_engine_failure_is_500_and_the_app_keeps_serving(make_app):
    runner = FakeRunner(error=ValueError("candle: something broke\nbacktrace"), error_at="submit")
    app = make_app(runner)
    client = app.test_client()
    body = error_of(client.post("/api/generate", json=GOOD), 500, "engine_error")
    assert body["message"] == "The engine failed: candle: something broke"
    runner.error = None
    assert client.post("/api/generate", json=GOOD).status_code == 200
    assert app.extensions["llm"].limiter.in_use == 0


def test_raw_stream_is_refused_with_400(client):
    body = error_of(client.post("/api/generate/stream", json={**GOOD, "raw": True}), 400, "bad_request")
    assert body["message"].startswith("raw:")


def test_failure_after_the_stream_began_is_one_error_event(make_app):
    runner = FakeRunner(tokens=("a", "b", "c"), error=ValueError("boom"), error_at="middle")
    app = make_app(runner)
    response = app.test_client().post("/api/generate/stream", json=GOOD)
    assert response.status_code == 200
    events = sse.parse(response.get_data(as_text=True))
    assert [name for name, _ in events] == ["token", "error"]
    assert events[1][1]["error"]["code"] == "engine_error"
    assert app.extensions["llm"].limiter.in_use == 0
    assert runner.closed == 1


def test_request_id_is_taken_from_the_header_or_made(client):
    response = client.get("/health/live", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"
    made = client.get("/health/live", headers={"X-Request-ID": "bad id with spaces"})
    assert made.headers["X-Request-ID"] not in ("", "bad id with spaces")


GRAMMAR_REFUSED = ValueError("llguidance: invalid JSON schema: unsupported keyword")


def test_a_refused_grammar_is_the_clients_fault_named_by_its_own_field(make_app):
    client = make_app(FakeRunner(error=GRAMMAR_REFUSED)).test_client()
    native = {"messages": [{"role": "user", "content": "a"}], "format": {"type": "object"}}
    body = error_of(client.post("/api/chat", json=native), 400, "bad_request")
    assert body["details"] == {"param": "format"} and "(format)" in body["message"]
    regex = {"prompt": "a", "regex": "[a-z]+"}
    assert error_of(client.post("/api/generate", json=regex), 400, "bad_request")["details"] == {
        "param": "regex"
    }
    openai = {
        "model": "test/fake",
        "messages": [{"role": "user", "content": "a"}],
        "response_format": {"type": "json_object"},
    }
    answer = client.post("/v1/chat/completions", json=openai)
    assert answer.status_code == 400 and answer.json["error"]["param"] == "response_format"


def test_the_servers_own_tool_call_grammar_refused_is_a_server_error(make_app):
    client = make_app(FakeRunner(error=GRAMMAR_REFUSED)).test_client()
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    body = {
        "model": "test/fake",
        "messages": [{"role": "user", "content": "a"}],
        "tools": [tool],
        "tool_choice": "required",
    }
    answer = client.post("/v1/chat/completions", json=body)
    assert answer.status_code == 500 and "server's grammar" in answer.json["error"]["message"]


def test_a_bug_of_ours_is_a_generic_500_that_names_no_internals(make_app):
    runner = FakeRunner(
        error=TypeError("unsupported operand type(s) for +: 'int' and 'str'"), error_at="submit"
    )
    client = make_app(runner).test_client()
    answer = client.post("/api/chat/stream", json={"messages": [{"role": "user", "content": "a"}]})
    body = error_of(answer, 500, "engine_error")
    assert "TypeError" not in body["message"] and "operand" not in body["message"]
    assert body["request_id"]


def test_each_api_family_shapes_its_errors_from_the_blueprint_not_the_url(client):
    """A route's blueprint carries its family: a 405 on an Anthropic route, a 404 under /v1, an invalid
    Anthropic request (400, not 422) and a native one each come in their own shape."""
    wrong_method = client.get("/v1/messages")
    assert wrong_method.status_code == 405 and wrong_method.json["type"] == "error"
    assert wrong_method.json["error"]["type"] == "invalid_request_error"
    unknown = client.get("/v1/nothing-here")
    assert unknown.status_code == 404 and set(unknown.json["error"]) == {"message", "type", "param", "code"}
    invalid = client.post("/v1/messages", json={"model": "test/fake", "max_tokens": "many"})
    assert invalid.status_code == 400 and invalid.json["type"] == "error"
    native = client.post("/api/chat", json={"messages": "nope"})
    assert native.status_code == 422 and native.json["error"]["status"] == 422


def test_a_busy_engine_is_503_with_retry_after(make_app):
    runner = FakeRunner(error=RuntimeError("Already borrowed"), error_at="submit")
    answer = make_app(runner).test_client().post("/api/generate", json=GOOD)
    body = error_of(answer, 503, "engine_error")
    assert answer.headers["Retry-After"] == "1" and "busy" in body["message"]


class PanicException(BaseException):
    """Named as pyo3's panic is: the engine's failure, never a bug of ours."""


def test_a_panic_while_counting_tokens_is_the_engines_failure_not_a_generic_one(make_app):
    class Panicking(FakeRunner):
        def tokenize_text(self, text, add_special_tokens, enable_thinking):
            raise PanicException("index out of bounds")

    client = make_app(Panicking()).test_client()
    body = error_of(client.post("/api/tokenize", json={"text": "hi"}), 500, "engine_error")
    assert body["message"] == "The engine failed: index out of bounds"
