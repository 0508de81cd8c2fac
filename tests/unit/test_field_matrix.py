"""Every request field of the published APIs, posted: honoured and no-effect fields are accepted (null too,
as "not given"), refused ones get 400 naming the field and saying why; docs/field-matrix.md is current."""

from __future__ import annotations

import struct

import pytest

from app.api.field_policy import REFUSED
from tests.field_matrix import MISSING, PAGE, Row, render, rows
from tests.unit.conftest import FAKE_MODEL

TURN = [{"role": "user", "content": "Hi"}]
BASE = {
    "POST /v1/chat/completions": {"model": FAKE_MODEL, "messages": TURN},
    "POST /v1/completions": {"model": FAKE_MODEL, "prompt": "Hi"},
    "POST /v1/embeddings": {"model": FAKE_MODEL, "input": "Hi"},
    "POST /v1/responses": {"model": FAKE_MODEL, "input": "Hi", "store": False},
    "POST /v1/messages": {"model": FAKE_MODEL, "max_tokens": 8, "messages": TURN},
    "POST /v1/messages/count_tokens": {"model": FAKE_MODEL, "messages": TURN},
}
FUNCTION = {
    "name": "lookup",
    "description": "Look it up.",
    "parameters": {"type": "object", "properties": {}},
}
# A value for each field that asks for what the field does; by field, or by (route, field) where the APIs
# differ. Where a field needs a companion (a seed needs greedy decoding), the sample is a dict of fields.
SAMPLES = {
    "max_tokens": 8,
    "max_completion_tokens": 8,
    "max_output_tokens": 8,
    "n": 2,
    "stop": ["\n\n"],
    "stop_sequences": ["END"],
    "stream": True,
    "stream_options": {"include_usage": True},
    "logit_bias": {"1": -1},
    "top_logprobs": 2,
    "seed": {"seed": 1, "temperature": 0},
    "temperature": 0.5,
    "top_p": 0.9,
    "top_k": 5,
    "frequency_penalty": 0.1,
    "presence_penalty": 0.1,
    "modalities": ["text"],
    "parallel_tool_calls": False,
    "metadata": {"app": "notes"},
    "instructions": "Be brief.",
    "system": "Be brief.",
    "encoding_format": "base64",
    "truncation": "disabled",
    "max_tool_calls": 1,
    "response_format": {"type": "json_object"},
    "text": {"format": {"type": "json_object"}},
    "background": False,
    "store": True,
    "user": "user-1",
    "service_tier": "auto",
    "safety_identifier": "hashed-user",
    "prompt_cache_key": "tenant-1",
    "prompt_cache_retention": "24h",
    "cache_control": {"type": "ephemeral"},
    "inference_geo": "us",
    "audio": {"voice": "alloy", "format": "mp3"},
    "prediction": {"type": "content", "content": "Hello"},
    "web_search_options": {},
    "reasoning_effort": "low",
    "verbosity": "low",
    "functions": [FUNCTION],
    "function_call": "auto",
    "echo": True,
    "suffix": " world",
    "best_of": 2,
    "dimensions": 8,
    "include": ["reasoning.encrypted_content"],
    "reasoning": {"effort": "low", "summary": "auto"},
    "conversation": "conv_1",
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "container": "container_1",
    "output_config": {"effort": "low"},
    ("POST /v1/chat/completions", "logprobs"): True,
    ("POST /v1/completions", "logprobs"): 2,
    ("POST /v1/chat/completions", "tools"): [{"type": "function", "function": FUNCTION}],
    ("POST /v1/chat/completions", "tool_choice"): "auto",
    ("POST /v1/responses", "tools"): [{"type": "function", **FUNCTION}],
    ("POST /v1/responses", "tool_choice"): "auto",
    ("POST /v1/responses", "prompt"): {"id": "pmpt_1"},
    ("POST /v1/messages", "tools"): [{"name": "lookup", "input_schema": {"type": "object"}}],
    ("POST /v1/messages", "tool_choice"): {"type": "auto"},
    ("POST /v1/messages/count_tokens", "tools"): [{"name": "lookup", "input_schema": {"type": "object"}}],
    ("POST /v1/messages/count_tokens", "tool_choice"): {"type": "auto"},
}
ROWS = rows()
TEMPLATE = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"


def gguf_with_template(template: str) -> bytes:
    """A GGUF header with one key, the chat template (what counting a prompt's tokens reads)."""

    def text(value: str) -> bytes:
        return struct.pack("<Q", len(value.encode())) + value.encode()

    return (
        b"GGUF"
        + struct.pack("<IQQ", 3, 0, 1)
        + text("tokenizer.chat_template")
        + struct.pack("<I", 8)
        + text(template)
    )


@pytest.fixture
def client(make_app, tmp_path):
    app = make_app()
    (tmp_path / "models" / FAKE_MODEL / "fake.gguf").write_bytes(gguf_with_template(TEMPLATE))
    return app.test_client()


def sample(row: Row) -> dict:
    if row.field in ("model", "messages", "input", "prompt") and (row.route, row.field) not in SAMPLES:
        return {}  # in every base body
    if row.field == "previous_response_id":
        return {}  # posted with a stored response's id in test_store; an unknown id is 404 below
    value = SAMPLES.get((row.route, row.field), SAMPLES.get(row.field))
    assert value is not None or row.field in SAMPLES, f"no sample for {row.route} {row.field}"
    return value if isinstance(value, dict) and row.field == "seed" else {row.field: value}


def post(client, row: Row, extra: dict):
    path = row.route.split()[1]
    return client.post(path, json={**BASE[row.route], **extra})


def accepted(answer, row: Row) -> bool:
    """The request passed validation: answered, or (embeddings from the fake chat model) refused by the
    engine for being the wrong kind of model."""
    if row.route == "POST /v1/embeddings" and answer.status_code == 400:
        return "cannot make embeddings" in answer.json["error"]["message"]
    return answer.status_code == 200


def test_every_published_field_is_declared():
    assert [f"{r.route} {r.field}" for r in ROWS if r.policy == MISSING] == []


def test_the_field_matrix_page_is_generated_from_the_specs():
    assert PAGE.read_text() == render(), "run: python -m tests.field_matrix"


@pytest.mark.parametrize(
    "row", [r for r in ROWS if r.policy != REFUSED], ids=lambda r: f"{r.route}:{r.field}"
)
def test_a_field_that_is_honoured_or_has_no_effect_is_accepted_and_null_is_not_given(client, row):
    answer = post(client, row, sample(row))
    assert accepted(answer, row), answer.get_data(as_text=True)
    if not row.required:
        answer = post(client, row, {row.field: None})
        if row.field == "previous_response_id":
            assert answer.status_code == 200, answer.get_data(as_text=True)
        else:
            assert accepted(answer, row), answer.get_data(as_text=True)


@pytest.mark.parametrize(
    "row", [r for r in ROWS if r.policy == REFUSED], ids=lambda r: f"{r.route}:{r.field}"
)
def test_a_refused_field_is_400_naming_it_and_saying_why_and_null_is_not_given(client, row):
    answer = post(client, row, sample(row))
    assert answer.status_code == 400, answer.get_data(as_text=True)
    error = answer.json["error"]
    assert error["message"].startswith(f"{row.field}: ") and len(error["message"]) > len(row.field) + 12
    assert accepted(post(client, row, {row.field: None}), row)
