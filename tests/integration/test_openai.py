"""The official `openai` client against the real server's /v1 routes."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest
import requests

from tests.helpers import EMBEDDED

HELLO = [{"role": "user", "content": "Hello!"}]
HELLO_TOKEN_ID = "19556"  # "Hello" in the embedded model's vocabulary
END_OF_TURN_ID = "2"  # <|im_end|>


@pytest.fixture(scope="module")
def client(server):
    with openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=300) as client:
        yield client


def test_models_are_listed_and_retrieved(client):
    assert [m.id for m in client.models.list()] == [EMBEDDED]
    model = client.models.retrieve(EMBEDDED)
    assert model.id == EMBEDDED and model.object == "model"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no/such-model")


def test_chat_streaming_and_not_agree(client):
    whole = client.chat.completions.create(model=EMBEDDED, messages=HELLO, max_tokens=12, temperature=0)
    assert whole.object == "chat.completion" and whole.model == EMBEDDED
    assert whole.choices[0].message.role == "assistant"
    stream = client.chat.completions.create(
        model=EMBEDDED,
        messages=HELLO,
        max_tokens=12,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [whole.choices[0].finish_reason]


def test_text_completion_streaming_and_not_agree(client):
    whole = client.completions.create(
        model=EMBEDDED, prompt="The capital of France is", max_tokens=8, temperature=0
    )
    assert whole.object == "text_completion"
    assert whole.usage.prompt_tokens <= 6  # the raw prompt, no chat template
    chunks = list(
        client.completions.create(
            model=EMBEDDED, prompt="The capital of France is", max_tokens=8, temperature=0, stream=True
        )
    )
    assert "".join(c.choices[0].text for c in chunks) == whole.choices[0].text


def test_n_gives_several_choices(client):
    result = client.chat.completions.create(
        model=EMBEDDED, messages=HELLO, max_tokens=6, temperature=0.9, n=2
    )
    assert [c.index for c in result.choices] == [0, 1]
    assert all(c.message.content for c in result.choices)
    assert result.usage.completion_tokens <= 12
    stream = list(
        client.chat.completions.create(
            model=EMBEDDED, messages=HELLO, max_tokens=4, temperature=0.9, n=2, stream=True
        )
    )
    assert {c.choices[0].index for c in stream if c.choices} == {0, 1}


def test_same_seed_and_settings_give_the_same_text(client):
    def once():
        return client.chat.completions.create(
            model=EMBEDDED, messages=HELLO, max_tokens=10, temperature=0, seed=7
        )

    assert once().choices[0].message.content == once().choices[0].message.content
    with pytest.raises(openai.UnprocessableEntityError, match="seed"):
        client.chat.completions.create(model=EMBEDDED, messages=HELLO, temperature=0.8, seed=7)


def test_stop_strings(client):
    messages = [{"role": "user", "content": "List three fruits, one per line."}]
    result = client.chat.completions.create(
        model=EMBEDDED, messages=messages, max_tokens=40, temperature=0, stop="\n"
    )
    assert result.choices[0].finish_reason == "stop"
    assert "\n" not in result.choices[0].message.content


def test_logprobs_with_alternatives(client):
    result = client.chat.completions.create(
        model=EMBEDDED, messages=HELLO, max_tokens=5, temperature=0, logprobs=True, top_logprobs=2
    )
    entries = result.choices[0].logprobs.content
    assert len(entries) == result.usage.completion_tokens
    assert "".join(e.token for e in entries) == result.choices[0].message.content
    for entry in entries:
        assert entry.logprob <= 0 and len(entry.top_logprobs) == 2
        assert entry.top_logprobs[0].logprob >= entry.top_logprobs[1].logprob


def test_penalties_min_p_and_logit_bias_are_honoured(client):
    plain = client.chat.completions.create(model=EMBEDDED, messages=HELLO, max_tokens=3, temperature=0)
    assert plain.choices[0].message.content.startswith("Hello")
    biased = client.chat.completions.create(
        model=EMBEDDED,
        messages=HELLO,
        max_tokens=3,
        temperature=0,
        logit_bias={HELLO_TOKEN_ID: -100},
        presence_penalty=0.5,
        frequency_penalty=0.5,
        extra_body={"min_p": 0.05, "repetition_penalty": 1.1, "top_k": 40},
        user="user-1",
    )
    assert not biased.choices[0].message.content.startswith("Hello")


def test_ignore_eos_generates_to_max_tokens_where_the_model_would_stop(client):
    """The end of turn, made the certain next token by a bias (whatever the CPU's greedy text), ends
    the answer at once; with ignore_eos the same request runs to max_tokens, as vLLM's and llama.cpp's
    servers do (the engine's own option)."""
    ask = {"model": EMBEDDED, "messages": HELLO, "max_tokens": 96, "temperature": 0}
    ending = {"logit_bias": {END_OF_TURN_ID: 100}}
    plain = client.chat.completions.create(**ask, **ending)
    assert plain.choices[0].finish_reason == "stop" and plain.usage.completion_tokens < 96
    forced = client.chat.completions.create(**ask, **ending, extra_body={"ignore_eos": True})
    assert forced.choices[0].finish_reason == "length" and forced.usage.completion_tokens == 96


def test_json_schema_output_validates(client):
    schema = {  # bounded: the output always fits in max_tokens, whatever text the CPU's greedy picks
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 24},
            "age": {"type": "integer", "minimum": 0, "maximum": 150},
        },
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    result = client.chat.completions.create(
        model=EMBEDDED,
        messages=[{"role": "user", "content": "Give me a person as JSON."}],
        max_tokens=60,
        temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema}},
    )
    jsonschema.validate(json.loads(result.choices[0].message.content), schema)
    anything = client.chat.completions.create(
        model=EMBEDDED, messages=HELLO, max_tokens=200, temperature=0, response_format={"type": "json_object"}
    )
    text, finish = anything.choices[0].message.content, anything.choices[0].finish_reason
    assert text.lstrip().startswith("{")
    if finish == "stop":  # an object without a schema may run on past max_tokens on some CPUs
        assert isinstance(json.loads(text), dict)
    else:
        assert finish == "length"


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 40}},
            "required": ["city"],
        },
    },
}


def test_a_tool_call_round_trip(client):
    messages = [{"role": "user", "content": "What's the weather in Paris?"}]
    first = client.chat.completions.create(
        model=EMBEDDED,
        messages=messages,
        max_tokens=60,
        temperature=0,
        tools=[WEATHER],
        tool_choice="required",
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, WEATHER["function"]["parameters"])
    assert set(arguments) == {"city"}  # no keys beyond the schema's, though it does not forbid them
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"celsius": 18, "sky": "cloudy"})},
    ]
    final = client.chat.completions.create(
        model=EMBEDDED, messages=messages, max_tokens=30, temperature=0, tools=[WEATHER]
    )
    assert final.choices[0].message.content

    named = {"type": "function", "function": {"name": "get_weather"}}
    stream = list(
        client.chat.completions.create(
            model=EMBEDDED,
            messages=messages[:1],
            max_tokens=60,
            temperature=0,
            tools=[WEATHER],
            tool_choice=named,
            stream=True,
        )
    )
    calls = [tc for c in stream if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert [tc.function.name for tc in calls] == ["get_weather"]
    assert [c.choices[0].finish_reason for c in stream if c.choices and c.choices[0].finish_reason] == [
        "tool_calls"
    ]


def test_errors_raise_the_sdks_classes_with_openais_shape(client, server):
    with pytest.raises(openai.NotFoundError) as not_found:
        client.chat.completions.create(model="TinyLlama/TinyLlama-1.1B-Chat-v1.0", messages=HELLO)
    assert not_found.value.body["code"] == "model_not_found" and not_found.value.body["param"] == "model"
    with pytest.raises(openai.UnprocessableEntityError) as out_of_range:
        client.chat.completions.create(model=EMBEDDED, messages=HELLO, temperature=5)
    assert out_of_range.value.body["param"] == "temperature"
    with pytest.raises(openai.UnprocessableEntityError, match="4096"):
        client.chat.completions.create(model=EMBEDDED, messages=HELLO, max_tokens=5000)
    with pytest.raises(openai.UnprocessableEntityError, match="bogus"):
        client.chat.completions.create(model=EMBEDDED, messages=HELLO, extra_body={"bogus": 1})
    with pytest.raises(openai.BadRequestError) as too_long:
        client.chat.completions.create(
            model=EMBEDDED, messages=[{"role": "user", "content": "hello " * 9000}]
        )
    assert too_long.value.body["code"] == "context_length_exceeded"
    raw = requests.post(
        server.url + "/v1/chat/completions",
        data=b"{",
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert raw.status_code == 400
    assert set(raw.json()["error"]) == {"message", "type", "param", "code"}


def test_the_native_api_has_the_same_controls(server):
    schema = {
        "type": "object",
        "properties": {"colour": {"type": "string"}},
        "required": ["colour"],
        "additionalProperties": False,
    }
    body = {"prompt": "Name a colour as JSON.", "temperature": 0, "max_tokens": 30, "format": schema}
    result = requests.post(server.url + "/api/generate", json=body, timeout=300).json()
    jsonschema.validate(json.loads(result["text"]), schema)
    phone = requests.post(
        server.url + "/api/generate",
        json={"prompt": "A phone number:", "regex": "[0-9]{3}-[0-9]{4}", "max_tokens": 12, "temperature": 0},
        timeout=300,
    ).json()
    assert len(phone["text"]) == 8 and phone["text"][3] == "-"
    biased = requests.post(
        server.url + "/api/chat",
        json={
            "messages": HELLO,
            "max_tokens": 3,
            "temperature": 0,
            "logit_bias": {HELLO_TOKEN_ID: -100},
            "min_p": 0.05,
        },
        timeout=300,
    ).json()
    assert not biased["message"]["content"].startswith("Hello")
