"""Each error case over HTTP against the real engine: status, envelope, and the worker serving on."""

from __future__ import annotations

import requests

from tests.helpers import EMBEDDED
from tests.integration.conftest import BROKEN, NO_TEMPLATE

USER = [{"role": "user", "content": "Hi"}]


def error_of(response: requests.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()["error"]
    assert (body["status"], body["code"]) == (status, code)
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


def post(server, path, body=None, **kwargs):
    return requests.post(server.url + path, json=body, timeout=300, **kwargs)


def test_malformed_json_is_400(server):
    response = post(server, "/api/chat", data=b'{"messages": [', headers={"Content-Type": "application/json"})
    error_of(response, 400, "bad_request")


def test_field_out_of_range_or_wrong_type_is_422_naming_it(server):
    body = error_of(post(server, "/api/generate", {"prompt": "x", "temperature": 3}), 422, "validation_error")
    assert "temperature" in body["details"]["fields"]
    body = error_of(
        post(server, "/api/chat", {"messages": USER, "max_tokens": "many"}), 422, "validation_error"
    )
    assert "max_tokens" in body["details"]["fields"]


def test_max_tokens_above_the_limit_is_422_naming_the_limit(server):
    body = error_of(
        post(server, "/api/generate", {"prompt": "x", "max_tokens": 5000}), 422, "validation_error"
    )
    assert "4096" in body["message"]


def test_unknown_model_is_404_listing_the_allowed(server):
    for path, body in (("/api/generate", {"prompt": "x"}), ("/api/chat/stream", {"messages": USER})):
        error = error_of(
            post(server, path, {**body, "model": "TinyLlama/TinyLlama-1.1B-Chat-v1.0"}),
            404,
            "model_not_found",
        )
        assert error["details"]["allowed"] == [EMBEDDED]


def test_prompt_longer_than_the_context_is_400_with_both_numbers(server):
    long_prompt = "hello " * 9000
    for path, body in (
        ("/api/generate", {"prompt": long_prompt, "raw": True}),
        ("/api/generate/stream", {"prompt": long_prompt}),
        ("/api/chat", {"messages": [{"role": "user", "content": long_prompt}]}),
    ):
        error = error_of(post(server, path, {**body, "max_tokens": 4}), 400, "context_length_exceeded")
        assert error["details"]["context_length"] == 8192
        assert error["details"]["prompt_tokens"] >= 9000
        assert "8192" in error["message"] and str(error["details"]["prompt_tokens"]) in error["message"]
    assert post(server, "/api/generate", {"prompt": "still serving", "max_tokens": 2}).status_code == 200


def test_readiness_names_the_model_that_failed_while_the_others_serve(models_server):
    ready = requests.get(models_server.url + "/health/ready", timeout=5)
    assert ready.status_code == 503
    detail = ready.json()
    assert detail["status"] == "not_ready" and list(detail["failed"]) == [BROKEN]
    assert "outside file length" in detail["failed"][BROKEN]
    states = {
        m["id"]: m["state"] for m in requests.get(models_server.url + "/api/llms", timeout=5).json()["models"]
    }
    assert states == {EMBEDDED: "loaded", NO_TEMPLATE: "loaded", BROKEN: "failed"}


def test_a_model_that_failed_to_load_is_503_and_the_worker_serves_on(models_server):
    error = error_of(
        post(models_server, "/api/generate", {"prompt": "x", "model": BROKEN}), 503, "model_not_ready"
    )
    assert BROKEN in error["message"] and "failed to load" in error["message"]
    ok = post(models_server, "/api/generate", {"prompt": "x", "model": EMBEDDED, "max_tokens": 2})
    assert ok.status_code == 200


def test_chat_with_a_model_without_chat_template_is_400(models_server):
    for path in ("/api/chat", "/api/chat/stream"):
        error = error_of(
            post(models_server, path, {"messages": USER, "model": NO_TEMPLATE}), 400, "chat_template_missing"
        )
        assert NO_TEMPLATE in error["message"]
    raw = post(
        models_server,
        "/api/generate",
        {"prompt": "Once upon a time", "raw": True, "model": NO_TEMPLATE, "max_tokens": 4},
    )
    assert raw.status_code == 200 and raw.json()["usage"]["completion_tokens"] > 0
