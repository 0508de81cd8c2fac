"""The client libraries people build on, unmodified, against the real server: LangChain (OpenAI and
Anthropic chat models), LlamaIndex's OpenAILike, pydantic-ai, instructor, the `openai` SDK's parse
helpers and the `openai` npm package under node. Pinned in requirements-clients.txt and tests/js/.
Assertions are shapes and behaviour (a structured answer parses into its model, a stream concatenates
to the greedy whole, usage is counted), never one CPU's text."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx2
import instructor
import openai
import pytest
from langchain_anthropic import ChatAnthropic
from langchain_openai import ChatOpenAI
from llama_index.core.llms import ChatMessage
from llama_index.llms.openai_like import OpenAILike
from pydantic import BaseModel, Field
from pydantic_ai import Agent, AgentRunResult
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from tests.helpers import EMBEDDED, ROOT

HELLO = "Hello!"
GREEDY = {"temperature": 0, "max_tokens": 12}
JS = ROOT / "tests" / "js"


# Bounded fields: a structured answer always fits in the token budget, whatever the CPU's greedy picks.
class City(BaseModel):
    """A city and the country it is in."""

    name: str = Field(max_length=20)
    country: str = Field(max_length=20)


class GetWeather(BaseModel):
    """The weather in a city."""

    city: str = Field(max_length=20)


CITY_PROMPT = "Name a large city and its country."


@pytest.fixture(scope="module")
def http() -> Iterator[httpx2.Client]:
    """One HTTP client for the libraries that take one, closed at the end (no socket left to the GC)."""
    with httpx2.Client(timeout=300) as client:
        yield client


@pytest.fixture(scope="module")
def oai(server, http) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, http_client=http)


# -- LangChain --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chat_openai(server, http) -> ChatOpenAI:
    return ChatOpenAI(
        model=EMBEDDED,
        base_url=server.url + "/v1",
        api_key="unused",
        max_retries=0,
        http_client=http,
        **GREEDY,
    )


def test_langchain_chat_openai_invokes_and_streams_with_usage(chat_openai):
    whole = chat_openai.invoke(HELLO)
    assert isinstance(whole.content, str) and whole.content
    assert whole.usage_metadata["output_tokens"] > 0
    assert whole.response_metadata["finish_reason"] in ("stop", "length")

    chunks = list(chat_openai.stream(HELLO, stream_usage=True))
    joined = chunks[0]
    for chunk in chunks[1:]:
        joined += chunk
    assert joined.content == whole.content
    assert joined.usage_metadata == whole.usage_metadata


def test_langchain_bind_tools_with_a_forced_tool(chat_openai):
    forced = chat_openai.bind_tools([GetWeather], tool_choice="GetWeather")
    reply = forced.invoke("What is the weather in Paris?", max_tokens=60)
    (call,) = reply.tool_calls
    assert call["name"] == "GetWeather" and call["id"]
    GetWeather.model_validate(call["args"])


def test_langchain_structured_output_with_a_json_schema(chat_openai):
    structured = chat_openai.with_structured_output(City, method="json_schema")
    city = structured.invoke(CITY_PROMPT, max_tokens=60)
    assert isinstance(city, City)


@pytest.fixture(scope="module")
def chat_anthropic(server) -> Iterator[ChatAnthropic]:
    model = ChatAnthropic(
        model=EMBEDDED, base_url=server.url, api_key="unused", max_retries=0, temperature=0, max_tokens=12
    )
    yield model
    model._client.close()


def test_langchain_chat_anthropic_invokes_and_streams(chat_anthropic):
    whole = chat_anthropic.invoke(HELLO)
    assert isinstance(whole.content, str) and whole.content
    assert whole.response_metadata["stop_reason"] in ("end_turn", "max_tokens")
    assert whole.usage_metadata["input_tokens"] > 0 and whole.usage_metadata["output_tokens"] > 0

    chunks = list(chat_anthropic.stream(HELLO))
    joined = chunks[0]
    for chunk in chunks[1:]:
        joined += chunk
    assert joined.text == whole.content
    assert joined.usage_metadata["output_tokens"] == whole.usage_metadata["output_tokens"]


# -- LlamaIndex -------------------------------------------------------------------------------------
def openai_like(server, http, *, is_chat_model: bool) -> OpenAILike:
    return OpenAILike(
        model=EMBEDDED,
        api_base=server.url + "/v1",
        api_key="unused",
        is_chat_model=is_chat_model,
        context_window=2048,
        max_retries=0,
        http_client=http,
        temperature=0,
        max_tokens=12,
    )


def test_llamaindex_chat_and_stream_chat_agree(server, http):
    llm = openai_like(server, http, is_chat_model=True)
    messages = [ChatMessage(role="user", content=HELLO)]
    whole = llm.chat(messages)
    assert whole.message.role == "assistant" and whole.message.content
    streamed = list(llm.stream_chat(messages))
    assert "".join(r.delta or "" for r in streamed) == whole.message.content
    assert streamed[-1].message.content == whole.message.content


def test_llamaindex_complete_uses_text_completions(server, http):
    llm = openai_like(server, http, is_chat_model=False)
    whole = llm.complete("The capital of France is")
    assert whole.text
    assert whole.raw.object == "text_completion"


# -- pydantic-ai ------------------------------------------------------------------------------------
def test_pydantic_ai_agent_returns_its_output_type(server):
    async def run() -> AgentRunResult[City]:
        async with httpx2.AsyncClient(timeout=300) as http:
            provider = OpenAIProvider(base_url=server.url + "/v1", api_key="unused", http_client=http)
            agent = Agent(
                OpenAIChatModel(EMBEDDED, provider=provider),
                output_type=City,
                model_settings={"temperature": 0, "max_tokens": 80},
                retries=0,
            )
            return await agent.run(CITY_PROMPT)

    result = asyncio.run(run())
    assert isinstance(result.output, City)
    assert result.usage.output_tokens > 0


# -- instructor -------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", [instructor.Mode.TOOLS, instructor.Mode.JSON_SCHEMA])
def test_instructor_returns_the_response_model(oai, mode):
    client = instructor.from_openai(oai, mode=mode)
    city = client.chat.completions.create(
        model=EMBEDDED,
        response_model=City,
        messages=[{"role": "user", "content": CITY_PROMPT}],
        max_retries=0,
        temperature=0,
        max_tokens=80,
    )
    assert isinstance(city, City)


# -- the openai SDK's parse helpers -----------------------------------------------------------------
def test_openai_chat_completions_parse_a_pydantic_format(oai):
    completion = oai.chat.completions.parse(
        model=EMBEDDED,
        messages=[{"role": "user", "content": CITY_PROMPT}],
        response_format=City,
        temperature=0,
        max_tokens=80,
    )
    message = completion.choices[0].message
    assert isinstance(message.parsed, City) and message.refusal is None


def test_openai_responses_parse_a_pydantic_format(oai):
    response = oai.responses.parse(
        model=EMBEDDED, input=CITY_PROMPT, text_format=City, temperature=0, max_output_tokens=80
    )
    assert response.status == "completed"
    assert isinstance(response.output_parsed, City)


# -- the openai npm package under node ----------------------------------------------------------------
@pytest.fixture(scope="module")
def node_modules(tmp_path_factory) -> Path:
    """tests/js's pinned packages, installed by `npm ci` from its lock (node_modules is git-ignored)."""
    npm = shutil.which("npm")
    assert npm and shutil.which("node"), "node and npm are needed (make test installs them when root)"
    env = {**os.environ, "npm_config_cache": str(tmp_path_factory.mktemp("npm-cache"))}
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=JS, env=env, check=True, timeout=300
    )
    return JS / "node_modules"


def test_openai_npm_package_under_node(server, node_modules):
    env = {**os.environ, "LLM_BASE_URL": server.url + "/v1", "LLM_MODEL": EMBEDDED}
    run = subprocess.run(
        ["node", "openai_client.mjs"], cwd=JS, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    assert found["whole"]["text"] and found["streamed"]["text"] == found["whole"]["text"]
    assert found["streamed"]["usage"] == found["whole"]["usage"]
    City.model_validate(found["parsed"])
    assert found["tool_call"]["name"] == "get_weather"
    GetWeather.model_validate_json(found["tool_call"]["arguments"])
    response = found["response"]
    assert response["text"]
    assert response["status"] == "completed" or response["incomplete"] == {"reason": "max_output_tokens"}
