"""Response shapes and stream framing on a fake runner (the real engine is in tests/integration)."""

from __future__ import annotations

from app.api import sse
from tests.helpers import FakeRunner

CHAT = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8}


def test_generate_returns_text_usage_and_timings(client):
    body = client.post("/api/generate", json={"prompt": "Hi"}).get_json()
    assert body["text"] == "Hello!"
    assert body["model"] == "test/fake"
    assert body["finish_reason"] == "length"
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}
    assert set(body["timings"]) == {
        "queue_seconds",
        "time_to_first_token_seconds",
        "total_seconds",
        "completion_tokens_per_second",
    }


def test_chat_stream_frames_then_done(make_app):
    app = make_app(FakeRunner(tokens=("A", "B")))
    response = app.test_client().post("/api/chat/stream", json=CHAT)
    assert response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Accel-Buffering"] == "no"
    events = sse.parse(response.get_data(as_text=True))
    assert events[:2] == [("token", {"delta": "A"}), ("token", {"delta": "B"})]
    name, done = events[2]
    assert name == "done"
    assert done["message"] == {"role": "assistant", "content": "AB"}
    assert done["usage"]["completion_tokens"] == 2
    assert app.extensions["llm"].limiter.in_use == 0


def test_a_stream_closed_early_cancels_and_frees_the_slot(make_app):
    runner = FakeRunner(tokens=tuple("abcdefgh"))
    app = make_app(runner)
    response = app.test_client().post("/api/chat/stream", json=CHAT, buffered=False)
    first = next(response.response)
    assert b"event: token" in first
    response.close()
    assert app.extensions["llm"].limiter.in_use == 0
    assert runner.closed == 1
    assert app.extensions["llm"].pool.describe()[0]["active_streams"] == 0


def test_a_stream_never_read_still_frees_the_slot(make_app):
    app = make_app()
    response = app.test_client().post("/api/chat/stream", json=CHAT, buffered=False)
    response.close()
    assert app.extensions["llm"].limiter.in_use == 0


def test_over_the_limit_is_503_with_retry_after(make_app):
    app = make_app(LLM_MAX_CONCURRENT_REQUESTS="1", LLM_QUEUE_TIMEOUT_SECONDS="0")
    client = app.test_client()
    held = client.post("/api/chat/stream", json=CHAT, buffered=False)
    refused = client.post("/api/chat", json=CHAT)
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "1"
    assert refused.get_json()["error"]["code"] == "overloaded"
    held.close()
    assert client.post("/api/chat", json=CHAT).status_code == 200


def test_readiness_and_listing(client):
    assert client.get("/health/live").get_json() == {"status": "ok"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200 and ready.get_json()["models"] == ["test/fake"]
    listing = client.get("/api/llms").get_json()
    (model,) = listing["models"]
    assert model["state"] == "loaded" and model["context_length"] == 2048
    assert model["source"]["origin"] == "model_path"
    assert model["engine"]["max_seqs"] == 10  # LLM_MAX_CONCURRENT_REQUESTS: decoding interleaves


def test_token_frame_is_the_general_frame():
    for text in ("plain", 'quote " and \\ backslash', "line\nbreak", "é ✓"):
        assert sse.token_frame(text) == sse.frame("token", {"delta": text})


def test_sse_frames_round_trip():
    text = sse.frame("token", {"delta": "line\nbreak é"}) + sse.frame("done", {"n": 1})
    assert sse.parse(text) == [("token", {"delta": "line\nbreak é"}), ("done", {"n": 1})]


def test_openapi_documents_ranges_and_defaults(client):
    spec = client.get("/openapi.json").get_json()
    schemas = spec["components"]["schemas"]
    generate = schemas["GenerateRequest"]["properties"]
    assert generate["temperature"]["minimum"] == 0 and generate["temperature"]["maximum"] == 2
    assert "LLM_DEFAULT_TEMPERATURE" in generate["temperature"]["description"]
    assert "raw" in generate
    stream = spec["paths"]["/api/chat/stream"]["post"]
    assert "text/event-stream" in stream["responses"]["200"]["content"]
    assert {"400", "404", "422", "500", "503"} <= set(stream["responses"])


# The required fields of OpenAI's Response object (the open-responses spec's ResponseResource).
RESPONSE_REQUIRED = {
    "id", "object", "created_at", "completed_at", "status", "incomplete_details", "model",
    "previous_response_id", "instructions", "output", "error", "tools", "tool_choice", "truncation",
    "parallel_tool_calls", "text", "top_p", "presence_penalty", "frequency_penalty", "top_logprobs",
    "temperature", "reasoning", "usage", "max_output_tokens", "max_tool_calls", "store", "background",
    "service_tier", "metadata", "safety_identifier", "prompt_cache_key",
}  # fmt: skip


def test_a_response_object_has_every_required_field_the_same_stored_and_fresh(client):
    tool = {"type": "function", "name": "f", "parameters": {"type": "object"}}
    fresh = client.post(
        "/v1/responses", json={"model": "test/fake", "input": "Hi", "max_output_tokens": 3, "tools": [tool]}
    ).get_json()
    assert set(fresh) >= RESPONSE_REQUIRED
    assert isinstance(fresh["temperature"], float) and isinstance(fresh["top_p"], float)
    assert fresh["tools"] == [{**tool, "description": None, "strict": None}]
    stored = client.get(f"/v1/responses/{fresh['id']}").get_json()
    assert {k: stored[k] for k in RESPONSE_REQUIRED} == {k: fresh[k] for k in RESPONSE_REQUIRED}
