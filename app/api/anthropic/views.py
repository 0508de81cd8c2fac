"""POST /v1/messages and /v1/messages/count_tokens: Anthropic's Messages API, a thin shell over the
same engine layer as the native and OpenAI routes. Errors are Anthropic's shape (app.errors)."""

from __future__ import annotations

import json
from typing import Any

from flask import jsonify
from flask.views import MethodView

from app.api import inference
from app.api.anthropic.events import MessageWriter
from app.api.anthropic.schemas import (
    CountTokensRequestSchema,
    MessageObjectSchema,
    MessagesRequestSchema,
    TokenCountSchema,
)
from app.api.base import AnthropicBlueprint
from app.api.functions import Choice, Function, ToolPlan, call_message, invalid, plan
from app.api.openai.writers import replay
from app.api.schemas import StreamEventSchema
from app.engine import GenerationRequest, tokens

blp = AnthropicBlueprint("anthropic", __name__, url_prefix="/v1", description="Anthropic Messages API")


def _text(blocks: Any, param: str) -> str:
    """A string, or text blocks joined."""
    if isinstance(blocks, str):
        return blocks
    if isinstance(blocks, list) and all(isinstance(b, dict) and b.get("type") == "text" for b in blocks):
        return "".join(str(b.get("text", "")) for b in blocks)
    raise invalid(param, "must be a string or a list of text blocks")


def engine_messages(body: dict) -> tuple[dict[str, str], ...]:
    """`system` and `messages` as the engine's role/content turns: tool_use blocks are the assistant's
    calls (as JSON), each tool_result a `tool` turn."""
    turns = [{"role": "system", "content": _text(body["system"], "system")}] if body.get("system") else []
    for message in body["messages"]:
        role, content = message["role"], message["content"]
        if isinstance(content, str):
            turns.append({"role": role, "content": content})
            continue
        if not isinstance(content, list) or not all(isinstance(b, dict) for b in content):
            raise invalid("messages", "content must be a string or a list of content blocks")
        text, calls = [], []
        for block in content:
            kind = block.get("type")
            if kind == "text":
                text.append(str(block.get("text", "")))
            elif kind == "tool_use" and role == "assistant":
                calls.append((block.get("name"), json.dumps(block.get("input") or {})))
            elif kind == "tool_result" and role == "user":
                result = block.get("content", "")
                output = result if isinstance(result, str) else _text(result, "messages")
                turns.append(
                    {"role": "tool", "content": ("Error: " if block.get("is_error") else "") + output}
                )
            else:
                raise invalid(
                    "messages",
                    f"content block type {kind!r} is not supported in a {role} message "
                    "(text; tool_use from the assistant; tool_result from the user)",
                )
        parts = ["".join(text)] if text else []
        if calls:
            parts.append(call_message(calls))
        if parts:
            turns.append({"role": role, "content": "\n".join(parts)})
    return tuple(turns)


def functions(tools: list[dict]) -> list[Function]:
    found = []
    for tool in tools:
        if tool.get("type") not in (None, "custom") or not isinstance(tool.get("name"), str):
            raise invalid(
                "tools",
                f"tool {tool.get('name') or tool.get('type')!r}: only client tools "
                "({name, description, input_schema}) are supported",
            )
        found.append(Function(tool["name"], tool.get("description"), tool.get("input_schema")))
    return found


def tool_choice(value: dict | None) -> Choice:
    kind = (value or {}).get("type", "auto")
    if kind in ("auto", "none"):
        return kind
    if kind == "any":
        return "required"
    if kind == "tool" and isinstance(value.get("name"), str):
        return value["name"]
    raise invalid("tool_choice", 'must be {"type": "auto" | "any" | "none"} or {"type": "tool", "name": ...}')


def tool_plan(body: dict) -> ToolPlan:
    return plan(functions(body.get("tools") or []), tool_choice(body.get("tool_choice")))


@blp.route("/messages")
class Messages(MethodView):
    @blp.arguments(MessagesRequestSchema)
    @blp.response(200, MessageObjectSchema)
    @blp.alt_response(200, schema=StreamEventSchema, content_type="text/event-stream", success=True)
    @blp.generation_errors()
    def post(self, body: dict):
        """The assistant's next message (Anthropic Messages API); `stream: true` sends Anthropic's
        events (`message_start`, `content_block_*`, `message_delta`, `message_stop`)."""
        tools = tool_plan(body)
        stops = body.get("stop_sequences") or []
        request: GenerationRequest = inference.build_request(
            {**body, "stop": stops},
            grammar=tools.grammar,
            tools=tools.tools,
            messages=engine_messages(body),
        )
        writer = MessageWriter(request.model, tools.forced, stops)
        endpoint = "v1_messages_stream" if body["stream"] else "v1_messages"
        if body["stream"] and not tools.forced:
            return inference.stream_response([request], writer, endpoint, body)
        result = inference.run_completion(request, endpoint, body)
        frames = writer.whole(result.text, result.tool_calls, result.finish_reason, result.usage)
        if body["stream"]:  # a forced call is known whole only once generated
            return replay([frames])
        return jsonify(writer.message)


@blp.route("/messages/count_tokens")
class CountTokens(MethodView):
    @blp.arguments(CountTokensRequestSchema)
    @blp.response(200, TokenCountSchema)
    @blp.generation_errors()
    def post(self, body: dict):
        """The prompt's tokens through the model's chat template, without generating (no slot)."""
        tools = tool_plan(body)
        offered = [json.loads(tool) for tool in tools.tools]
        with inference.leased(body["model"]) as model:
            text = tokens.prompt(model, list(engine_messages(body)), offered)
            return {"input_tokens": len(tokens.tokenize(model, text, False))}
