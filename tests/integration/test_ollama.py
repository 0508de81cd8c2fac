"""The official `ollama` Python client, unmodified, against the real server's /ollama API."""

from __future__ import annotations

import json

import jsonschema
import ollama
import pytest

from tests.helpers import EMBEDDED
from tests.integration.conftest import EMBEDDING_MODEL

GREEDY = {"temperature": 0, "num_predict": 12}
ASK = [{"role": "user", "content": "Name three colours."}]


@pytest.fixture(scope="module")
def client(apis_server):
    client = ollama.Client(host=apis_server.url + "/ollama")
    yield client
    client._client.close()  # its connection pool


def test_list_show_and_ps(client):
    names = [model.model for model in client.list().models]
    assert f"{EMBEDDED}:latest" in names and f"{EMBEDDING_MODEL}:latest" in names
    shown = client.show(EMBEDDED)
    assert shown.modelinfo["llama.context_length"] == 8192
    assert "completion" in shown.capabilities and "im_start" in shown.template
    assert f"{EMBEDDED}:latest" in [model.model for model in client.ps().models]


def test_chat_whole_and_streamed_agree_at_temperature_zero(client):
    whole = client.chat(model=EMBEDDED, messages=ASK, options=GREEDY)
    assert whole.done and whole.message.role == "assistant" and whole.eval_count == 12
    assert whole.prompt_eval_count > 0 and whole.total_duration > 0
    parts = list(client.chat(model=EMBEDDED, messages=ASK, options=GREEDY, stream=True))
    assert parts[-1].done and not any(part.done for part in parts[:-1])
    assert "".join(part.message.content for part in parts) == whole.message.content


def test_generate_with_options_and_a_stop_string(client):
    answer = client.generate(model=EMBEDDED, prompt="Count from one to ten in words.", options=GREEDY)
    assert answer.done and answer.response
    stop = answer.response.split()[1] if len(answer.response.split()) > 1 else answer.response[-1]
    stopped = client.generate(
        model=EMBEDDED, prompt="Count from one to ten in words.", options={**GREEDY, "stop": [stop]}
    )
    assert stop not in stopped.response and answer.response.startswith(stopped.response)


def test_format_with_a_schema_gives_json_that_validates(client):
    schema = {
        "type": "object",
        "properties": {"colour": {"type": "string"}},
        "required": ["colour"],
        "additionalProperties": False,
    }
    answer = client.chat(
        model=EMBEDDED, messages=ASK, format=schema, options={"temperature": 0, "num_predict": 64}
    )
    jsonschema.validate(json.loads(answer.message.content), schema)


def test_embed_with_the_embedding_model(client):
    answer = client.embed(model=EMBEDDING_MODEL, input=["first text", "second text"])
    assert len(answer.embeddings) == 2 and len(answer.embeddings[0]) == len(answer.embeddings[1]) > 0
    legacy = client.embeddings(model=EMBEDDING_MODEL, prompt="first text")
    assert legacy.embedding == pytest.approx(answer.embeddings[0], abs=1e-5)


def test_errors_raise_the_clients_response_error(client):
    with pytest.raises(ollama.ResponseError) as missing:
        client.chat(model="nobody/nothing", messages=ASK)
    assert missing.value.status_code == 404 and "nothing" in missing.value.error
    with pytest.raises(ollama.ResponseError) as refused:
        client.chat(model=EMBEDDED, messages=ASK, options={"mirostat": 1})
    assert refused.value.status_code == 400 and "mirostat" in refused.value.error
