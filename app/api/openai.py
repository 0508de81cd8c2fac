"""The OpenAI-compatible /v1 routes: a second thin shell over the same engine layer and rules."""

from __future__ import annotations

import json
import time
from typing import Any

from flask import jsonify
from flask.views import MethodView

from app.api import inference
from app.api.base import OpenAIBlueprint
from app.api.openai_responses import ChatEncoder, ChunkWriter, chat_choice, replay, response_object
from app.api.openai_schemas import (
    ChatCompletionRequestSchema,
    CompletionRequestSchema,
    ModelListSchema,
    ModelObjectSchema,
    OpenAIResponseSchema,
)
from app.api.schemas import OpenAIErrorSchema, StreamEventSchema
from app.engine import GenerationRequest, Grammar
from app.errors import ModelNotFoundError, UnprocessableError

blp = OpenAIBlueprint("openai", __name__, url_prefix="/v1", description="OpenAI-compatible API")
STARTED = int(time.time())
OWNER = "llm-inference-api"


def _invalid(param: str, message: str) -> UnprocessableError:
    return UnprocessableError(f"{param}: {message}", details={"fields": {param: [message]}})


# -- request conversion ---------------------------------------------------------------------------
def _text_of(content: Any) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        if any(part.get("type") != "text" for part in content):
            raise _invalid("messages", "only text content parts are supported")
        return "".join(str(part.get("text", "")) for part in content)
    raise _invalid("messages", "content must be a string or a list of text parts")


def engine_messages(messages: list[dict]) -> tuple[dict[str, str], ...]:
    """OpenAI messages -> the engine's role/content pairs (tool calls written out as JSON)."""
    converted = []
    for message in messages:
        role = "system" if message["role"] == "developer" else message["role"]
        content = _text_of(message.get("content"))
        calls = message.get("tool_calls") or []
        if role == "assistant" and calls and not content:
            content = json.dumps([call.get("function", {}) for call in calls])
        converted.append({"role": role, "content": content})
    return tuple(converted)


def response_grammar(response_format: dict | None) -> Grammar | None:
    if not response_format or response_format.get("type") == "text":
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return Grammar("json_schema", json.dumps({"type": "object"}))
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise _invalid("response_format", "json_schema.schema must be a JSON schema object")
        return Grammar("json_schema", json.dumps(schema))
    raise _invalid("response_format", "type must be text, json_object or json_schema")


def _functions(tools: list[dict]) -> list[dict]:
    functions = []
    for tool in tools:
        function = tool.get("function")
        if tool.get("type") != "function" or not isinstance(function, dict) or not function.get("name"):
            raise _invalid("tools", 'each tool must be {"type": "function", "function": {"name": ...}}')
        functions.append(function)
    return functions


def forced_call_grammar(functions: list[dict], tool_choice: Any) -> Grammar | None:
    """A grammar that makes the model emit one call, for tool_choice "required" or a named function."""
    if tool_choice == "required":
        chosen = functions
    elif isinstance(tool_choice, dict):
        name = (tool_choice.get("function") or {}).get("name")
        chosen = [f for f in functions if f["name"] == name]
        if not chosen:
            raise _invalid("tool_choice", f"no tool named {name!r} in tools")
    else:
        return None
    arguments = chosen[0].get("parameters") if len(chosen) == 1 else None
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "enum": [f["name"] for f in chosen]},
            "arguments": closed_objects(arguments or {"type": "object"}),
        },
        "required": ["name", "arguments"],
        "additionalProperties": False,  # the engine's JSON grammar allows extra keys unless told
    }
    return Grammar("json_schema", json.dumps(schema))


def closed_objects(schema: Any) -> Any:
    """The schema with `additionalProperties: false` on every object that says nothing about it (as
    strict function calling does): the engine's JSON grammar would otherwise let the model add keys
    until max_tokens."""
    if isinstance(schema, list):
        return [closed_objects(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    closed = {key: closed_objects(value) for key, value in schema.items()}
    if closed.get("type") == "object" and "properties" in closed:
        closed.setdefault("additionalProperties", False)
    return closed


def with_max_tokens(body: dict) -> dict:
    """`max_completion_tokens` is OpenAI's newer name for `max_tokens`."""
    return {**body, "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens")}


def wants_usage(body: dict) -> bool:
    return bool((body.get("stream_options") or {}).get("include_usage"))


def chat_requests(body: dict) -> tuple[list[GenerationRequest], bool]:
    """The engine requests for a chat completion (one per choice), and whether a call is forced."""
    tools, tool_choice = body.get("tools") or [], body.get("tool_choice")
    if tool_choice not in (None, "none", "auto", "required") and not isinstance(tool_choice, dict):
        raise _invalid("tool_choice", 'must be "none", "auto", "required" or a function object')
    functions = _functions(tools)
    grammar = response_grammar(body.get("response_format"))
    forced = forced_call_grammar(functions, tool_choice) if functions else None
    if forced is not None and grammar is not None:
        raise _invalid("response_format", "cannot be combined with a forced tool call")
    offered = () if tool_choice == "none" else tuple(json.dumps(tool) for tool in tools)
    request = inference.build_request(
        with_max_tokens(body),
        grammar=forced or grammar,
        tools=() if forced else offered,
        logprobs=body["logprobs"],
        top_logprobs=body.get("top_logprobs"),
        messages=engine_messages(body["messages"]),
    )
    return [request] * body["n"], forced is not None


# -- views ----------------------------------------------------------------------------------------
def model_object(model_id: str) -> dict:
    return {"id": model_id, "object": "model", "created": STARTED, "owned_by": OWNER}


@blp.route("/models")
class Models(MethodView):
    @blp.response(200, ModelListSchema)
    def get(self):
        """The models this server serves (loaded or loadable)."""
        pool = inference.services().pool
        models = inference.visible_models(pool.describe())
        return {"object": "list", "data": [model_object(m["id"]) for m in models]}


@blp.route("/models/<path:model_id>")
class ModelDetail(MethodView):
    @blp.response(200, ModelObjectSchema)
    @blp.alt_response(404, schema=OpenAIErrorSchema, description="Unknown model")
    def get(self, model_id: str):
        """One model."""
        pool = inference.services().pool
        if pool.settings.canonical(model_id) not in {
            m["id"] for m in inference.visible_models(pool.describe())
        }:
            raise ModelNotFoundError(f"The model '{model_id}' does not exist", details={"model": model_id})
        return model_object(model_id)


@blp.route("/chat/completions")
class ChatCompletions(MethodView):
    @blp.arguments(ChatCompletionRequestSchema)
    @blp.response(200, OpenAIResponseSchema)
    @blp.alt_response(200, schema=StreamEventSchema, content_type="text/event-stream", success=True)
    @blp.generation_errors()
    def post(self, body: dict):
        """Chat completion; `stream: true` answers with `chat.completion.chunk` events and `[DONE]`."""
        requests, forced = chat_requests(body)
        include_usage = wants_usage(body)
        model, logprobs = requests[0].model, body["logprobs"]
        if body["stream"] and not forced:
            encoder = ChatEncoder(model, include_usage, logprobs)
            return inference.stream_response(requests, encoder, "v1_chat_stream", body)
        results = inference.run_completions(requests, "v1_chat_stream" if body["stream"] else "v1_chat", body)
        choices = [chat_choice(i, r, forced, logprobs) for i, r in enumerate(results)]
        if body["stream"]:  # a forced call is known whole only once generated
            writer = ChunkWriter("chat.completion.chunk", model, include_usage)
            frames = []
            for choice in choices:
                delta = {"role": "assistant", **{k: v for k, v in choice["message"].items() if k != "role"}}
                if "tool_calls" in delta:
                    delta["tool_calls"] = [{"index": i, **c} for i, c in enumerate(delta["tool_calls"])]
                frames.append(writer.choice(choice["index"], {"delta": delta}))
                frames.append(writer.choice(choice["index"], {"delta": {}}, choice["finish_reason"]))
            return replay([*frames, writer.close(results)])
        return jsonify(response_object("chat.completion", model, choices, results))


@blp.route("/completions")
class Completions(MethodView):
    @blp.arguments(CompletionRequestSchema)
    @blp.response(200, OpenAIResponseSchema)
    @blp.alt_response(200, schema=StreamEventSchema, content_type="text/event-stream", success=True)
    @blp.generation_errors()
    def post(self, body: dict):
        """Text completion of a raw prompt (no chat template). The engine completes raw prompts in
        one call, so `stream: true` sends each choice's text as one chunk, then `[DONE]`."""
        request = inference.build_request(
            with_max_tokens(body),
            prompt=body["prompt"],
            raw=True,
        )
        endpoint = "v1_completions_stream" if body["stream"] else "v1_completions"
        results = inference.run_completions([request] * body["n"], endpoint, body)
        if body["stream"]:
            include_usage = wants_usage(body)
            writer = ChunkWriter("text_completion", request.model, include_usage)
            frames = []
            for i, result in enumerate(results):
                frames.append(writer.choice(i, {"text": result.text, "logprobs": None}))
                frames.append(writer.choice(i, {"text": "", "logprobs": None}, result.finish_reason))
            return replay([*frames, writer.close(results)])
        choices = [
            {"index": i, "text": r.text, "logprobs": None, "finish_reason": r.finish_reason}
            for i, r in enumerate(results)
        ]
        return jsonify(response_object("text_completion", request.model, choices, results))
