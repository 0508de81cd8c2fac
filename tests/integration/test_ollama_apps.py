"""The HTTP calls Open WebUI and Continue make to an Ollama server, replayed against the real server's
/ollama API with the bodies their source builds, asserting the fields each reads, typed as it reads them.

Open WebUI (github.com/open-webui/open-webui): backend/open_webui/routers/ollama.py (its proxy: tags, ps,
version, show, chat, generate, embed, embeddings, unload), utils/payload.py (an OpenAI-shaped chat turned
into Ollama's body), routers/tasks.py (title and tags generation), utils/response.py (what it reads back),
retrieval/utils.py (RAG embeddings). Continue (github.com/continuedev/continue): core/llm/llms/Ollama.ts,
core/autocomplete/ (raw prompts with its FIM template and stop lists)."""

from __future__ import annotations

import json
import re
from datetime import datetime

import pytest
import requests

from tests.helpers import EMBEDDED
from tests.integration.conftest import EMBEDDING_MODEL

TAGGED = f"{EMBEDDED}:latest"
GREEDY = {"temperature": 0, "num_predict": 8}
COUNTS = ("prompt_eval_count", "eval_count", "total_duration", "load_duration", "prompt_eval_duration")
# Continue's parser for /api/show's `parameters`
PARAMETER_LINE = re.compile(r'^(\S+)\s+((?:".*")|\S+)$')
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture(scope="module")
def ollama_url(apis_server):
    return apis_server.url + "/ollama"


@pytest.fixture(scope="module")
def http():
    with requests.Session() as session:
        yield session


def post(http, url: str, body: dict) -> requests.Response:
    return http.post(url, data=json.dumps(body), headers={"Content-Type": "application/json"}, timeout=300)


def ndjson(response: requests.Response) -> list[dict]:
    """Every line JSON, only the last `done`, with the counts as integers (nanoseconds for durations)."""
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines() if line.strip()]
    assert lines and all(line["done"] is False for line in lines[:-1]) and lines[-1]["done"] is True
    assert_done(lines[-1])
    return lines


def assert_done(last: dict) -> None:
    assert last["done"] is True and last["done_reason"] in ("stop", "length")
    assert all(isinstance(last[name], int) and last[name] >= 0 for name in (*COUNTS, "eval_duration"))
    assert last["prompt_eval_count"] > 0 and isinstance(last["created_at"], str)


# -- Open WebUI ------------------------------------------------------------------------------------
def test_open_webui_connection_check_model_list_and_running_models(http, ollama_url):
    version = http.get(ollama_url + "/api/version").json()["version"]
    # routers/ollama.py: the lowest version of all connections, compared as integers
    assert all(isinstance(part, int) for part in map(int, re.sub(r"^v|-.*", "", version).split(".")))
    models = http.get(ollama_url + "/api/tags").json()["models"]
    listed = {model["model"]: model for model in models}
    # it adds ":latest" to a name without a tag and routes chat, generate and embed by these keys
    assert TAGGED in listed and all(":" in name for name in listed)
    for model in models:
        assert isinstance(model["name"], str) and isinstance(model["modified_at"], str)
        assert isinstance(model["size"], int) and isinstance(model["digest"], str)
        details = model["details"]
        assert all(
            isinstance(details[key], str) for key in ("parameter_size", "quantization_level", "family")
        )
    # its /api/show proxy passes the answer on to the model editor (this also loads the model)
    shown = post(http, ollama_url + "/api/show", {"model": TAGGED}).json()
    assert "completion" in shown["capabilities"] and isinstance(shown["details"], dict)
    # get_all_models: /api/ps's expires_at parsed with datetime.fromisoformat into a timestamp
    running = http.get(ollama_url + "/api/ps").json()["models"]
    assert TAGGED in [model["model"] for model in running]
    assert all(int(datetime.fromisoformat(model["expires_at"]).timestamp()) for model in running)


def test_open_webui_chat_streams_an_openai_shaped_chat_with_its_options(http, ollama_url):
    # utils/payload.py: params under `options`, max_tokens as num_predict, format/keep_alive at the root
    body = {
        "model": TAGGED,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Name a colour."},
        ],
        "stream": True,
        "options": {**GREEDY, "top_k": 40, "top_p": 0.9, "num_ctx": 2048, "stop": ["\n\n"], "use_mmap": True},
        "keep_alive": "5m",
    }
    lines = ndjson(post(http, ollama_url + "/api/chat", body))
    # utils/response.py reads model, message.content (and thinking, tool_calls) on every line
    assert all(line["model"] == TAGGED and line["message"]["role"] == "assistant" for line in lines)
    assert all(isinstance(line["message"]["content"], str) for line in lines)


@pytest.mark.parametrize("task", ["title", "tags"])
def test_open_webui_title_and_tags_generation_are_one_unstreamed_chat(http, ollama_url, task):
    # routers/tasks.py: one user message holding the task's prompt, stream false (max_tokens is dropped)
    prompt = f"Generate {task} for this chat as JSON. ### Chat History: USER: Why is the sky blue?"
    body = {"model": TAGGED, "messages": [{"role": "user", "content": prompt}], "stream": False}
    answer = post(http, ollama_url + "/api/chat", {**body, "options": GREEDY})
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("application/json")
    whole = answer.json()
    assert isinstance(whole["message"]["content"], str) and whole["message"]["role"] == "assistant"
    assert_done(whole)


def test_open_webui_json_format_and_a_tool_call_round_trip(http, ollama_url):
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    body = {"model": TAGGED, "messages": ask, "stream": False, "options": GREEDY}
    assert_done(post(http, ollama_url + "/api/chat", {**body, "format": "json"}).json())
    called = post(http, ollama_url + "/api/chat", {**body, "tools": [WEATHER_TOOL]}).json()
    for call in called["message"].get("tool_calls", []):
        assert isinstance(call["function"]["name"], str) and isinstance(call["function"]["arguments"], dict)
    # the next turn: the assistant's calls carry OpenAI's index and id (convert_messages_openai_to_ollama)
    call = {"index": 0, "id": "call_1", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    history = [
        *ask,
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": "Sunny"},
    ]
    ndjson(
        post(
            http,
            ollama_url + "/api/chat",
            {**body, "messages": history, "stream": True, "tools": [WEATHER_TOOL]},
        )
    )


def test_open_webui_generate_embeddings_and_what_it_is_refused(http, ollama_url):
    generated = ndjson(
        post(http, ollama_url + "/api/generate", {"model": TAGGED, "prompt": "Hi", "options": GREEDY})
    )
    assert all(isinstance(line["response"], str) for line in generated)
    # retrieval/utils.py: RAG embeddings, the model as configured (no tag), `truncate` true
    texts = ["first chunk", "second chunk"]
    embedded = post(
        http, ollama_url + "/api/embed", {"input": texts, "model": EMBEDDING_MODEL, "truncate": True}
    )
    vectors = embedded.json()["embeddings"]
    assert len(vectors) == 2 and all(isinstance(x, float) for x in vectors[0])
    legacy = post(
        http, ollama_url + "/api/embeddings", {"model": f"{EMBEDDING_MODEL}:latest", "prompt": "first"}
    )
    assert len(legacy.json()["embedding"]) == len(vectors[0])
    # an image for a text model: Open WebUI shows the error it reads from the body
    image = {"role": "user", "content": "What is this?", "images": ["aGk="]}
    refused = post(http, ollama_url + "/api/chat", {"model": TAGGED, "messages": [image]})
    assert refused.status_code == 400 and "images" in refused.json()["error"]
    # its unload is generate with keep_alive 0: the admin scope here, closed on this keyless server
    unload = post(http, ollama_url + "/api/generate", {"model": TAGGED, "keep_alive": 0, "prompt": ""})
    assert unload.status_code == 403 and "admin" in unload.json()["error"]


# -- Continue --------------------------------------------------------------------------------------
def continue_show(http, ollama_url) -> tuple[int, str]:
    """ensureModelInfo: /api/show with `name`; num_ctx from `parameters`, FIM if the template has .Suffix."""
    shown = post(http, ollama_url + "/api/show", {"name": TAGGED})
    assert shown.status_code == 200
    body = shown.json()
    lines = [PARAMETER_LINE.match(line) for line in body["parameters"].split("\n")]
    parameters = {match[1]: match[2] for match in lines if match}
    return int(parameters["num_ctx"]), body["template"]


def test_continue_lists_models_and_reads_the_context_length(http, ollama_url):
    names = [model["name"] for model in http.get(ollama_url + "/api/tags").json()["models"]]
    assert TAGGED in names
    context, template = continue_show(http, ollama_url)
    assert context == 8192 and ".Suffix" not in template  # so Continue autocompletes with raw prompts


def test_continue_chat_streams_with_its_options_and_tools(http, ollama_url):
    context, _ = continue_show(http, ollama_url)
    options = {
        **GREEDY,
        "top_p": 0.95,
        "top_k": 40,
        "num_ctx": context,
        "stop": ["<|im_end|>"],
        "min_p": 0.05,
    }
    body = {
        "model": TAGGED,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Oslo?"},
        ],
        "options": options,
        "keep_alive": 1800,
        "tools": [WEATHER_TOOL],  # sent when the last message is the user's
    }
    lines = ndjson(post(http, ollama_url + "/api/chat", body))
    for line in lines:
        message = line["message"]
        assert message["role"] == "assistant" and isinstance(message["content"], str)
        for call in message.get("tool_calls", []):
            assert isinstance(call["function"]["arguments"], dict)  # it JSON.stringifies them
    thinking = post(http, ollama_url + "/api/chat", {**body, "think": True})
    assert thinking.status_code == 400 and "think" in thinking.json()["error"]


def test_continue_autocomplete_is_a_raw_prompt_with_its_fim_template_and_stops(http, ollama_url):
    context, _ = continue_show(http, ollama_url)
    # core/autocomplete/templating: the default (stable-code) FIM template, its 7 stops and 3 common ones
    stops = ["<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<file_sep>", "<|endoftext|>", "</fim_middle>"]
    stops += ["</code>", "/src/", "#- coding: utf-8", "```"]
    body = {
        "model": TAGGED,
        "prompt": "<fim_prefix>def add(a, b):\n    <fim_suffix>\n<fim_middle>",
        "raw": True,
        "options": {**GREEDY, "stop": stops, "num_ctx": context},
        "keep_alive": 1800,
    }
    lines = ndjson(post(http, ollama_url + "/api/generate", body))
    assert all(isinstance(line["response"], str) for line in lines)


def test_continue_embeds_chunks(http, ollama_url):
    answer = post(
        http, ollama_url + "/api/embed", {"model": EMBEDDING_MODEL, "input": ["a chunk", "another"]}
    )
    assert answer.status_code == 200 and len(answer.json()["embeddings"]) == 2
