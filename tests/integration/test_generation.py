"""Every generation endpoint against the real engine, streaming and not."""

from __future__ import annotations

import requests

from tests.helpers import EMBEDDED, read_events

GREEDY = {"temperature": 0, "max_tokens": 16}
HELLO = [{"role": "user", "content": "Hello! Who are you?"}]


def post(server, path: str, body: dict, **kwargs) -> requests.Response:
    return requests.post(server.url + path, json=body, timeout=300, verify=server.verify, **kwargs)


def test_probes_answer(server):
    assert requests.get(server.url + "/health/live", timeout=5).json() == {"status": "ok"}
    ready = requests.get(server.url + "/health/ready", timeout=5)
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "models": [EMBEDDED]}


# What the server chooses on each device for the embedded model with four slots: in-situ
# quantization, max_seqs (a sequence per slot: concurrent requests interleave), prefix cache size and
# the server's budget for it (CPU only, where the engine never evicts it).
EXPECTED_ENGINE = {"cpu": ("Q8_0", 4, 16, 256), "cuda": (None, 4, 16, 0)}


def test_llms_reports_the_embedded_model_and_the_settings_chosen_for_its_device(server):
    listing = requests.get(server.url + "/api/llms", timeout=5).json()
    device = listing["device"]
    assert device in EXPECTED_ENGINE and not listing["allow_any_model"]
    (model,) = listing["models"]
    assert model["id"] == EMBEDDED and model["state"] == "loaded" and model["error"] is None
    assert model["context_length"] == 8192
    assert model["source"]["origin"] == "embedded" and model["source"]["format"] == "gguf"
    in_situ, max_seqs, prefix_cache, budget = EXPECTED_ENGINE[device]
    assert model["engine"] == {
        "device": device,
        "in_situ_quant": in_situ,
        "dtype": "auto",
        "max_seqs": max_seqs,
        "prefix_cache_n": prefix_cache,
        "prefix_cache_mb": budget,
        "chat_template": "model",
        "max_context": None,
        "replicas": 1,
        "reasons": model["engine"]["reasons"],
    }
    assert model["load_seconds"] > 0


def test_generate_applies_the_chat_template_unless_raw(server):
    prompt = "The capital of France is"
    templated = post(server, "/api/generate", {"prompt": prompt, **GREEDY}).json()
    raw = post(server, "/api/generate", {"prompt": prompt, "raw": True, **GREEDY}).json()
    assert templated["model"] == raw["model"] == EMBEDDED
    assert templated["text"] and raw["text"]
    # the template wraps the prompt in a system and a user turn; raw sends the five tokens as they are
    assert raw["usage"]["prompt_tokens"] <= 6 < templated["usage"]["prompt_tokens"]
    for body in (templated, raw):
        usage = body["usage"]
        assert 0 < usage["completion_tokens"] <= 16
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        assert body["finish_reason"] in ("stop", "length")


def test_generate_stream_matches_the_non_streaming_text(server):
    body = {"prompt": "Write a haiku about coding.", **GREEDY}
    whole = post(server, "/api/generate", body).json()
    response = post(server, "/api/generate/stream", body, stream=True)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.headers["X-Accel-Buffering"] == "no"
    events = read_events(response)
    names = [name for name, _ in events]
    assert names[-1] == "done" and set(names[:-1]) == {"token"}
    deltas = "".join(data["delta"] for name, data in events if name == "token")
    done = events[-1][1]
    assert deltas == done["text"] == whole["text"]
    assert done["usage"] == whole["usage"]
    assert done["finish_reason"] == whole["finish_reason"]


def test_chat_and_chat_stream_agree(server):
    body = {"messages": HELLO, **GREEDY}
    whole = post(server, "/api/chat", body).json()
    assert whole["message"]["role"] == "assistant" and whole["message"]["content"]
    events = read_events(post(server, "/api/chat/stream", body, stream=True))
    done = events[-1][1]
    assert done["message"] == whole["message"]
    assert "".join(d["delta"] for n, d in events if n == "token") == whole["message"]["content"]
    assert done["usage"] == whole["usage"]


def test_max_tokens_ends_with_length(server):
    body = {
        "messages": [{"role": "user", "content": "Tell me a long story."}],
        "temperature": 0,
        "max_tokens": 5,
    }
    result = post(server, "/api/chat", body).json()
    assert result["finish_reason"] == "length"
    assert result["usage"]["completion_tokens"] == 5


def test_stop_strings_end_generation_before_them(server):
    base = {
        "messages": [{"role": "user", "content": "List three fruits, one per line."}],
        "temperature": 0,
        "max_tokens": 40,
    }
    free = post(server, "/api/chat", base).json()["message"]["content"]
    assert "\n" in free
    stopped = post(server, "/api/chat", {**base, "stop": ["\n"]}).json()
    assert stopped["finish_reason"] == "stop"
    assert "\n" not in stopped["message"]["content"]
    assert free.startswith(stopped["message"]["content"])


def test_seed_with_greedy_decoding_is_reproducible(server):
    body = {"prompt": "Name a colour.", "seed": 42, **GREEDY}
    first, second = (post(server, "/api/generate", body).json() for _ in range(2))
    assert first["text"] == second["text"]
    refused = post(server, "/api/generate", {**body, "temperature": 0.8})
    assert refused.status_code == 422 and refused.json()["error"]["message"].startswith("seed:")


def test_sampling_controls_are_accepted(server):
    body = {"prompt": "Say something.", "temperature": 1.2, "top_p": 0.5, "top_k": 20, "max_tokens": 6}
    result = post(server, "/api/generate", body)
    assert result.status_code == 200
    assert result.json()["usage"]["completion_tokens"] <= 6


def test_omitted_model_uses_the_first_allowed(server):
    assert post(server, "/api/generate", {"prompt": "Hi", "max_tokens": 2}).json()["model"] == EMBEDDED


def test_seed_readme_examples_work_as_written(server):
    generate = {
        "prompt": "Explain machine learning in simple terms.",
        "model": EMBEDDED,
        "max_tokens": 256,
        "temperature": 0.7,
    }
    assert post(server, "/api/generate", generate).json()["text"]
    stream = post(
        server,
        "/api/generate/stream",
        {"prompt": "Write a haiku about coding.", "model": EMBEDDED},
        stream=True,
    )
    assert read_events(stream)[-1][0] == "done"
    chat = {"model": EMBEDDED, "messages": [{"role": "user", "content": "Hello!"}]}
    assert post(server, "/api/chat", chat).json()["message"]["content"]


def test_swagger_ui_openapi_and_metrics(server):
    page = requests.get(server.url + "/swagger-ui", timeout=5)
    assert page.status_code == 200 and "swagger-ui-bundle.js" in page.text
    asset = requests.get(server.url + "/swagger-ui/assets/swagger-ui-bundle.js", timeout=5)
    assert asset.status_code == 200 and len(asset.content) > 100_000
    spec = requests.get(server.url + "/openapi.json", timeout=5).json()
    assert {"/api/generate", "/api/generate/stream", "/api/chat", "/api/chat/stream", "/api/llms"} <= set(
        spec["paths"]
    )
    metrics = requests.get(server.url + "/metrics", timeout=5)
    assert metrics.status_code == 200
    assert 'flask_http_request_total{method="POST",status="200"}' in metrics.text
