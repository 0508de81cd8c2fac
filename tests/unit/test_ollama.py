"""Ollama's shell on the fake engine: its shapes, NDJSON, options under Ollama's names, its errors."""

from __future__ import annotations

import json

from tests.helpers import FakeRunner
from tests.unit.conftest import FAKE_MODEL

CHAT = {"model": FAKE_MODEL, "messages": [{"role": "user", "content": "Hi"}]}


def test_the_root_version_and_tags_answer_as_ollama_does(client):
    assert client.get("/ollama/").get_data(as_text=True) == "Ollama is running"
    assert client.head("/ollama/").status_code == 200
    version = client.get("/ollama/api/version").json["version"]
    assert all(part.isdigit() for part in version.split("."))
    (model,) = client.get("/ollama/api/tags").json["models"]
    assert model["name"] == model["model"] == f"{FAKE_MODEL}:latest"
    assert set(model["details"]) >= {"format", "family"}


def test_chat_streams_ndjson_by_default_ending_with_the_counts(client):
    response = client.post("/ollama/api/chat", json=CHAT)
    assert response.status_code == 200 and response.mimetype == "application/x-ndjson"
    lines = [json.loads(line) for line in response.get_data(as_text=True).splitlines()]
    assert all(not line["done"] for line in lines[:-1]) and lines[-1]["done"]
    assert "".join(line["message"]["content"] for line in lines) == "Hello!"
    last = lines[-1]
    assert last["done_reason"] == "length" and last["eval_count"] == 3 and last["prompt_eval_count"] == 3
    assert isinstance(last["total_duration"], int) and last["created_at"].endswith("Z")


def test_stream_false_is_one_object_and_generate_has_a_response(client):
    whole = client.post("/ollama/api/chat", json={**CHAT, "stream": False}).json
    assert whole["message"] == {"role": "assistant", "content": "Hello!"} and whole["done"]
    generated = client.post(
        "/ollama/api/generate", json={"model": FAKE_MODEL, "prompt": "Hi", "stream": False}
    )
    assert generated.json["response"] == "Hello!" and generated.json["done"]


def test_options_take_ollamas_names_and_unknown_ones_are_refused_by_name(client):
    options = {
        "num_predict": 2,
        "temperature": 0,
        "top_k": 5,
        "repeat_penalty": 1.1,
        "stop": ["x"],
        "seed": 3,
    }
    assert (
        client.post("/ollama/api/chat", json={**CHAT, "stream": False, "options": options}).status_code == 200
    )
    refused = client.post("/ollama/api/chat", json={**CHAT, "options": {"mirostat": 2}})
    assert refused.status_code == 400 and "mirostat" in refused.json["error"]
    assert set(refused.json) == {"error"} and refused.headers["X-Request-ID"]


def test_errors_are_ollamas_shape_with_its_statuses(client):
    missing = client.post("/ollama/api/chat", json={**CHAT, "model": "nope/nothing"})
    assert missing.status_code == 404 and set(missing.json) == {"error"}
    images = {**CHAT, "messages": [{"role": "user", "content": "Hi", "images": ["aGk="]}]}
    assert client.post("/ollama/api/chat", json=images).status_code == 400
    assert client.post("/ollama/api/chat", json={**CHAT, "think": True}).status_code == 400
    assert client.post("/ollama/api/chat", data="{", content_type="application/json").status_code == 400


def test_an_engine_failure_mid_stream_is_an_error_line(make_app):
    client = make_app(FakeRunner(error=ValueError("candle: broken"), error_at="middle")).test_client()
    lines = client.post("/ollama/api/chat", json=CHAT).get_data(as_text=True).splitlines()
    assert json.loads(lines[-1]) == {"error": "The engine failed: candle: broken"}
