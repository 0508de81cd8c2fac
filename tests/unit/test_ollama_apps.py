"""What Open WebUI and Continue send to Ollama's API, on the fake engine: tagged names, the context length
in `/api/show`'s parameters, the runner options, long stop lists and tool calls with OpenAI's ids."""

from __future__ import annotations

import re

from tests.unit.conftest import FAKE_MODEL

TAGGED = f"{FAKE_MODEL}:latest"
ASK = [{"role": "user", "content": "Hi"}]
# Continue's parser for /api/show's `parameters` (core/llm/llms/Ollama.ts)
PARAMETER_LINE = re.compile(r'^(\S+)\s+((?:".*")|\S+)$')


def chat(client, **body):
    return client.post("/ollama/api/chat", json={"model": TAGGED, "messages": ASK, "stream": False, **body})


def test_listed_names_carry_a_tag_and_are_served_under_it(client):
    (listed,) = client.get("/ollama/api/tags").json["models"]
    assert listed["name"] == listed["model"] == TAGGED
    (running,) = client.get("/ollama/api/ps").json["models"]
    assert running["model"] == TAGGED
    answer = chat(client)
    assert answer.status_code == 200 and answer.json["model"] == TAGGED


def test_show_parameters_give_the_context_length_in_continues_format(client):
    shown = client.post("/ollama/api/show", json={"name": TAGGED}).json
    lines = [PARAMETER_LINE.match(line) for line in shown["parameters"].split("\n")]
    parameters = {match[1]: match[2] for match in lines if match}
    assert int(parameters["num_ctx"]) == shown["model_info"]["llama.context_length"]


def test_runner_options_are_accepted_and_mirostat_only_when_off(client):
    runner = {"num_thread": 4, "num_gpu": 1, "use_mmap": True, "use_mlock": False, "num_batch": 512}
    assert (
        chat(client, options={**runner, "mirostat": 0, "mirostat_eta": 0.1, "mirostat_tau": 5.0}).status_code
        == 200
    )
    refused = chat(client, options={"mirostat": 2})
    assert refused.status_code == 400 and "mirostat" in refused.json["error"]
    unknown = chat(client, options={"tfs_z": 1.0})
    assert unknown.status_code == 400 and "tfs_z" in unknown.json["error"]


def test_a_stop_list_as_long_as_continues_autocomplete_sends_is_accepted(client):
    body = {"model": TAGGED, "prompt": "def f(", "raw": True, "stream": False}
    stops = [f"<stop{i}>" for i in range(15)]
    assert client.post("/ollama/api/generate", json={**body, "options": {"stop": stops}}).status_code == 200
    too_many = client.post("/ollama/api/generate", json={**body, "options": {"stop": stops * 3}})
    assert too_many.status_code == 400 and "stop" in too_many.json["error"]


def test_tool_calls_with_openais_id_and_index_are_accepted(client):
    call = {"index": 0, "id": "call_1", "function": {"name": "get_time", "arguments": {"zone": "UTC"}}}
    messages = [
        *ASK,
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": "12:00"},
    ]
    assert chat(client, messages=messages).status_code == 200
