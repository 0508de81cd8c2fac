"""Fields real apps send to /v1/chat/completions: accepted (null meaning not given) or refused by name,
and the message object's fields that strict clients require."""

from __future__ import annotations

from tests.unit.conftest import FAKE_MODEL

CHAT = {"model": FAKE_MODEL, "messages": [{"role": "user", "content": "Hi"}]}


def test_fields_of_the_spec_with_no_effect_here_are_accepted_and_null_means_not_given(client):
    body = {
        **CHAT,
        "store": False,
        "metadata": {"app": "notes"},
        "parallel_tool_calls": None,
        "service_tier": None,
        "prompt_cache_key": "user-1",
        "safety_identifier": "hash",
        "user": None,
        "modalities": ["text"],
    }
    answer = client.post("/v1/chat/completions", json=body)
    assert answer.status_code == 200, answer.json
    message = answer.json["choices"][0]["message"]
    assert message["refusal"] is None and message["annotations"] == [] and message["content"] == "Hello!"


def test_audio_output_is_refused_by_name(client):
    answer = client.post("/v1/chat/completions", json={**CHAT, "modalities": ["text", "audio"]})
    assert answer.status_code == 422 and answer.json["error"]["param"] == "modalities"
