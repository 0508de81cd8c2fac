"""The OpenAI-compatible /v1 routes: a second thin shell over the same engine layer and rules."""

from __future__ import annotations

import json
import time
from typing import Any

from flask import jsonify
from flask.views import MethodView

from app.api import inference
from app.api.base import OpenAIBlueprint
from app.api.functions import Choice, Function, call_message, closed_objects, invalid, plan, unsupported
from app.api.openai.schemas import (
    ChatCompletionRequestSchema,
    CompletionRequestSchema,
    ModelListSchema,
    ModelObjectSchema,
    OpenAIResponseSchema,
)
from app.api.openai.writers import ChatEncoder, ChunkWriter, chat_choice, replay, response_object
from app.api.schemas import OpenAIErrorSchema, StreamEventSchema
from app.engine import GenerationRequest, Grammar
from app.errors import ModelNotFoundError

blp = OpenAIBlueprint("openai", __name__, url_prefix="/v1", description="OpenAI-compatible API")
STARTED = int(time.time())
OWNER = "llm-inference-api"


# -- request conversion ---------------------------------------------------------------------------
def _text_of(content: Any) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        if any(part.get("type") != "text" for part in content):
            kinds = sorted({str(part.get("type")) for part in content} - {"text"})
            raise unsupported("messages", f"content part type {kinds[0]!r} is not supported (text only)")
        return "".join(str(part.get("text", "")) for part in content)
    raise invalid("messages", "content must be a string or a list of text parts")


def engine_messages(messages: list[dict]) -> tuple[dict[str, str], ...]:
    """OpenAI messages -> the engine's role/content pairs (tool calls written out as JSON)."""
    converted = []
    for message in messages:
        role = "system" if message["role"] == "developer" else message["role"]
        content = _text_of(message.get("content"))
        calls = message.get("tool_calls") or []
        if role == "assistant" and calls and not content:
            functions = [call.get("function") or {} for call in calls]
            content = call_message([(f.get("name"), f.get("arguments")) for f in functions])
        converted.append({"role": role, "content": content})
    return tuple(converted)


def format_grammar(
    kind: str | None, schema: Any, param: str, names: tuple[str, str], strict: bool = False
) -> Grammar | None:
    """OpenAI's output formats (`text`, `json_object`, `json_schema`) as an engine grammar, for chat's
    response_format and the Responses API's text.format; `names`: how errors name the type and the
    schema inside `param`."""
    if kind == "text":
        return None
    if kind == "json_object":
        return Grammar("json_schema", json.dumps({"type": "object"}), param=param)
    if kind == "json_schema":
        if not isinstance(schema, dict):
            raise invalid(param, f"{names[1]} must be a JSON schema object")
        if strict:  # no keys beyond the schema's, as OpenAI enforces
            schema = closed_objects(schema)
        return Grammar("json_schema", json.dumps(schema), param=param)
    raise invalid(param, f"{names[0]} must be text, json_object or json_schema")


def response_grammar(response_format: dict | None) -> Grammar | None:
    if not response_format:
        return None
    schema = (response_format.get("json_schema") or {}).get("schema")
    names = ("type", "json_schema.schema")
    return format_grammar(response_format.get("type"), schema, "response_format", names)


def openai_functions(tools: list[dict]) -> list[Function]:
    functions = []
    for tool in tools:
        function = tool.get("function")
        if tool.get("type") != "function" or not isinstance(function, dict) or not function.get("name"):
            raise invalid("tools", 'each tool must be {"type": "function", "function": {"name": ...}}')
        functions.append(Function(function["name"], function.get("description"), function.get("parameters")))
    return functions


def openai_choice(tool_choice: Any) -> Choice:
    """OpenAI's tool_choice ("none", "auto", "required" or a named function) as the shared choice."""
    if tool_choice is None:
        return "auto"
    if tool_choice in ("none", "auto", "required"):
        return tool_choice
    if isinstance(tool_choice, dict) and tool_choice.get("type", "function") == "function":
        name = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
        if isinstance(name, str) and name:
            return name
    raise invalid("tool_choice", 'must be "none", "auto", "required" or a function object')


def with_max_tokens(body: dict) -> dict:
    """`max_completion_tokens` is OpenAI's newer name for `max_tokens`."""
    return {**body, "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens")}


def wants_usage(body: dict) -> bool:
    return bool((body.get("stream_options") or {}).get("include_usage"))


def chat_requests(body: dict) -> tuple[list[GenerationRequest], bool]:
    """The engine requests for a chat completion (one per choice), and whether a call is forced."""
    tools = plan(openai_functions(body.get("tools") or []), openai_choice(body.get("tool_choice")))
    grammar = response_grammar(body.get("response_format"))
    if tools.forced and grammar is not None:
        raise invalid("response_format", "cannot be combined with a forced tool call")
    request = inference.build_request(
        with_max_tokens(body),
        grammar=tools.grammar or grammar,
        tools=tools.tools,
        logprobs=body["logprobs"],
        top_logprobs=body.get("top_logprobs"),
        messages=engine_messages(body["messages"]),
    )
    return [request] * body["n"], tools.forced


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
            # one chunk a choice, its whole text with its finish_reason: the spec's completion object
            # (a finish_reason is a string), which a chunk of the text alone would break
            frames = [
                writer.choice(i, {"text": result.text, "logprobs": None}, result.finish_reason)
                for i, result in enumerate(results)
            ]
            return replay([*frames, writer.close(results)])
        choices = [
            {"index": i, "text": r.text, "logprobs": None, "finish_reason": r.finish_reason}
            for i, r in enumerate(results)
        ]
        return jsonify(response_object("text_completion", request.model, choices, results))
