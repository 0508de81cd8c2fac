"""The Responses and Anthropic Messages APIs through their official clients (`openai`, `anthropic`),
unmodified, against the real server. Assertions are properties (shapes, event order, token counts
that two paths agree on), never one CPU's text."""

from __future__ import annotations

import json

import anthropic
import jsonschema
import openai
import pytest
import requests

from tests.helpers import EMBEDDED, delta, samples

WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 20}},
    "required": ["city"],
}
GREEDY = {"temperature": 0}


@pytest.fixture(scope="module")
def oai(apis_server):
    with openai.OpenAI(base_url=apis_server.url + "/v1", api_key="unused", max_retries=0) as client:
        yield client  # closed with its connections: a socket left for the garbage collector warns later


@pytest.fixture(scope="module")
def claude(apis_server):
    with anthropic.Anthropic(base_url=apis_server.url, api_key="unused", max_retries=0) as client:
        yield client


def prompt_tokens(server, messages: list[dict]) -> int:
    """What /api/tokenize counts for a conversation (the model's template, rendered by the server)."""
    answer = requests.post(server.url + "/api/tokenize", json={"model": EMBEDDED, "messages": messages})
    assert answer.status_code == 200, answer.text
    return answer.json()["count"]


# -- Responses ------------------------------------------------------------------------------------
def test_a_response_has_text_usage_and_a_status(apis_server, oai):
    before = samples(apis_server)
    response = oai.responses.create(
        model=EMBEDDED, instructions="Be brief.", input="Name a colour.", max_output_tokens=24, **GREEDY
    )
    assert response.object == "response" and response.id.startswith("resp_")
    assert response.status in ("completed", "incomplete")
    if response.status == "incomplete":
        assert response.incomplete_details.reason == "max_output_tokens"
        assert response.usage.output_tokens == 24
    assert response.output[0].type == "message" and response.output_text
    assert response.store is True
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}]
    assert response.usage.input_tokens == prompt_tokens(apis_server, messages)
    after = samples(apis_server)
    assert delta(after, before, "llm_requests_total", endpoint="v1_responses", outcome="success") == 1


def test_a_streamed_response_sends_the_event_sequence(oai):
    events = list(
        oai.responses.create(model=EMBEDDED, input="Count to twenty.", max_output_tokens=12, stream=True)
    )
    kinds = [event.type for event in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:-1] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    final = events[-1].response
    assert final.output_text == text
    if kinds[-1] == "response.incomplete":  # cut by max_output_tokens (a sampled answer may end sooner)
        assert final.incomplete_details.reason == "max_output_tokens" and final.usage.output_tokens == 12
    else:
        assert kinds[-1] == "response.completed" and 0 < final.usage.output_tokens <= 12


def test_a_forced_function_call_then_its_output(oai):
    tools = [
        {"type": "function", "name": "get_weather", "description": "Weather in a city", "parameters": WEATHER}
    ]
    response = oai.responses.create(
        model=EMBEDDED,
        input="What is the weather in Paris?",
        tools=tools,
        tool_choice="required",
        max_output_tokens=64,
    )
    call = response.output[0]
    assert response.status == "completed" and call.type == "function_call"
    assert call.name == "get_weather" and call.call_id
    jsonschema.validate(json.loads(call.arguments), WEATHER)
    follow = oai.responses.create(
        model=EMBEDDED,
        input=[
            {"role": "user", "content": "What is the weather in Paris?"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"},
        ],
        tools=tools,
        tool_choice="none",
        max_output_tokens=16,
    )
    assert follow.output[0].type == "message" and follow.output_text


def test_a_streamed_forced_call_sends_the_call_events(oai):
    tools = [{"type": "function", "name": "get_weather", "parameters": WEATHER}]
    stream = oai.responses.create(
        model=EMBEDDED,
        input="Weather in Oslo?",
        tools=tools,
        tool_choice={"type": "function", "name": "get_weather"},
        max_output_tokens=64,
        stream=True,
    )
    events = list(stream)
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert len(done) == 1 and done[0].name == "get_weather"
    jsonschema.validate(json.loads(done[0].arguments), WEATHER)
    assert events[-1].type == "response.completed"


def test_a_json_schema_format_gives_valid_json(oai):
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    response = oai.responses.create(
        model=EMBEDDED,
        input="What is 2 + 2? Answer in JSON.",
        text={"format": {"type": "json_schema", "name": "sum", "schema": schema, "strict": True}},
        max_output_tokens=64,
        **GREEDY,
    )
    assert response.status == "completed"
    value = json.loads(response.output_text)
    jsonschema.validate(value, schema)
    assert set(value) == {"answer"}  # strict: no keys beyond the schema's


def test_responses_refuse_what_they_cannot_do(apis_server, oai):
    with pytest.raises(openai.NotFoundError) as stored:
        oai.responses.create(model=EMBEDDED, input="Hi", previous_response_id="resp_123")
    assert stored.value.body["param"] == "response_id"
    with pytest.raises(openai.BadRequestError) as item:  # a request for what a text model cannot do
        oai.responses.create(model=EMBEDDED, input=[{"type": "input_image", "image_url": "x"}])
    assert "input_image" in item.value.body["message"] and item.value.body["param"] == "input"
    with pytest.raises(openai.BadRequestError) as tool:
        oai.responses.create(model=EMBEDDED, input="Hi", tools=[{"type": "web_search"}])
    assert "web_search" in tool.value.body["message"]


# -- Anthropic Messages ---------------------------------------------------------------------------
def test_a_message_has_content_a_stop_reason_and_counted_input(claude):
    system, messages = "Be brief.", [{"role": "user", "content": "Name a fruit."}]
    message = claude.messages.create(model=EMBEDDED, max_tokens=20, system=system, messages=messages)
    assert message.type == "message" and message.role == "assistant" and message.id.startswith("msg_")
    assert message.content[0].type == "text" and message.content[0].text
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert message.usage.output_tokens <= 20
    counted = claude.messages.count_tokens(model=EMBEDDED, system=system, messages=messages)
    assert message.usage.input_tokens == counted.input_tokens > 0


def test_a_streamed_message_sends_anthropics_events(apis_server, claude):
    before = samples(apis_server)
    with claude.messages.stream(
        model=EMBEDDED, max_tokens=10, messages=[{"role": "user", "content": "Count to twenty."}]
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert kinds.index("content_block_start") < kinds.index("content_block_delta")
    assert "content_block_stop" in kinds and "message_delta" in kinds
    assert final.stop_reason in ("max_tokens", "end_turn")  # a sampled answer may end sooner
    assert (
        final.usage.output_tokens == 10
        if final.stop_reason == "max_tokens"
        else final.usage.output_tokens <= 10
    )
    assert final.usage.input_tokens > 0 and final.content[0].text
    after = samples(apis_server)
    assert delta(after, before, "llm_requests_total", endpoint="v1_messages_stream", outcome="success") == 1


def test_tool_use_then_tool_result(claude):
    tools = [{"name": "get_weather", "description": "Weather in a city", "input_schema": WEATHER}]
    question = {"role": "user", "content": "What is the weather in Paris?"}
    message = claude.messages.create(
        model=EMBEDDED, max_tokens=64, tools=tools, tool_choice={"type": "any"}, messages=[question]
    )
    assert message.stop_reason == "tool_use"
    use = message.content[0]
    assert use.type == "tool_use" and use.name == "get_weather" and use.id.startswith("toolu_")
    jsonschema.validate(use.input, WEATHER)
    answer = claude.messages.create(
        model=EMBEDDED,
        max_tokens=16,
        tools=tools,
        tool_choice={"type": "none"},
        messages=[
            question,
            {"role": "assistant", "content": [use.model_dump(include={"type", "id", "name", "input"})]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]},
        ],
    )
    assert answer.content[0].type == "text" and answer.stop_reason in ("end_turn", "max_tokens")


def test_a_streamed_forced_tool_use(claude):
    tools = [{"name": "get_weather", "input_schema": WEATHER}]
    with claude.messages.stream(
        model=EMBEDDED,
        max_tokens=64,
        tools=tools,
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "Weather in Rome?"}],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use" and final.content[0].type == "tool_use"
    jsonschema.validate(final.content[0].input, WEATHER)


def test_a_stop_sequence_never_appears_in_the_text(claude):
    message = claude.messages.create(
        model=EMBEDDED,
        max_tokens=40,
        stop_sequences=[","],
        messages=[{"role": "user", "content": "List five colours separated by commas."}],
    )
    assert "," not in message.content[0].text
    assert message.stop_reason in ("stop_sequence", "max_tokens")
    if message.stop_reason == "stop_sequence":
        assert message.stop_sequence == ","


def test_anthropic_errors_are_anthropics_shape(apis_server, claude):
    with pytest.raises(anthropic.BadRequestError) as missing:
        claude.messages.create(model=EMBEDDED, messages=[{"role": "user", "content": "Hi"}], max_tokens=0)
    assert missing.value.body["type"] == "error"
    assert missing.value.body["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in missing.value.body["error"]["message"]
    with pytest.raises(anthropic.NotFoundError) as unknown:
        claude.messages.create(
            model="no/such-model", max_tokens=5, messages=[{"role": "user", "content": "Hi"}]
        )
    assert unknown.value.body["error"]["type"] == "not_found_error"
    raw = requests.post(apis_server.url + "/v1/messages", json={"model": EMBEDDED, "messages": []})
    assert raw.status_code == 400 and raw.json()["type"] == "error"
    assert "max_tokens" in raw.json()["error"]["message"]
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}}
    with pytest.raises(anthropic.BadRequestError) as block:
        claude.messages.create(model=EMBEDDED, max_tokens=5, messages=[{"role": "user", "content": [image]}])
    assert "'image'" in block.value.body["error"]["message"]
