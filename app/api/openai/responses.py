"""POST /v1/responses: OpenAI's Responses API, a thin shell over the same engine layer as /v1 chat.

A response is stored (`store`, default true; LLM_STORE_RESPONSES=false stores none) with its input
items and the conversation before it, so `previous_response_id` continues it; `background: true`
queues it for the lowest lane (see app/store/work.py) and answers at once with status `queued`.
"""

from __future__ import annotations

import json
from typing import Any

from flask import jsonify
from flask.views import MethodView

from app.api import inference
from app.api.base import OpenAIBlueprint
from app.api.functions import Choice, Function, call_message, invalid, plan, unsupported
from app.api.openai import stored
from app.api.openai.chat import format_grammar
from app.api.openai.responses_events import ResponseWriter
from app.api.openai.schemas import ResponseObjectSchema, ResponsesRequestSchema
from app.api.openai.writers import replay
from app.api.schemas import StreamEventSchema
from app.engine import GenerationRequest, Grammar
from app.store.responses import QUEUED

blp = OpenAIBlueprint("responses", __name__, url_prefix="/v1", description="OpenAI Responses API")

ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
TEXT_PARTS = ("input_text", "output_text", "text")


def _content(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        kinds = {part.get("type") for part in content} - set(TEXT_PARTS)
        if kinds:
            raise unsupported(
                "input", f"content part type {sorted(map(str, kinds))[0]!r} is not supported (text only)"
            )
        return "".join(str(part.get("text", "")) for part in content)
    raise invalid("input", "a message's content must be a string or a list of input_text parts")


def input_list(body: dict) -> list[dict]:
    items = body["input"]
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        raise invalid("input", "must be a string or a non-empty list of items")
    return items


def input_messages(body: dict, context: list[dict] = ()) -> tuple[dict[str, str], ...]:
    """`instructions`, the stored conversation before (`context`) and `input` as the engine's
    role/content turns; consecutive function_call items are one assistant turn, and a
    function_call_output is a `tool` turn."""
    messages = [{"role": "system", "content": body["instructions"]}] if body.get("instructions") else []
    items = [*context, *input_list(body)]
    calls: list[tuple[str, Any]] = []
    for item in items:
        kind = item.get("type", "message")
        if kind == "function_call":
            calls.append((item.get("name"), item.get("arguments")))
            continue
        if calls:
            messages.append({"role": "assistant", "content": call_message(calls)})
            calls = []
        if kind == "function_call_output":
            output = item.get("output")
            messages.append(
                {"role": "tool", "content": output if isinstance(output, str) else json.dumps(output)}
            )
        elif kind == "message":
            role = ROLES.get(item.get("role"))
            if role is None:
                raise invalid("input", "a message's role must be user, assistant, system or developer")
            messages.append({"role": role, "content": _content(item.get("content"))})
        else:
            raise unsupported(
                "input", f"item type {kind!r} is not supported (message, function_call, function_call_output)"
            )
    if calls:
        messages.append({"role": "assistant", "content": call_message(calls)})
    return tuple(messages)


def text_grammar(text: dict | None) -> Grammar | None:
    output_format = (text or {}).get("format") or {"type": "text"}
    kind, schema, strict = output_format.get("type"), output_format.get("schema"), output_format.get("strict")
    return format_grammar(kind, schema, "text", ("format.type", "format.schema"), bool(strict))


def functions(tools: list[dict]) -> list[Function]:
    found = []
    for tool in tools:
        if tool.get("type") != "function":
            raise unsupported("tools", f"tool type {tool.get('type')!r} is not supported (function only)")
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise invalid("tools", 'each tool must be {"type": "function", "name": ..., "parameters": {...}}')
        found.append(Function(tool["name"], tool.get("description"), tool.get("parameters")))
    return found


def tool_choice(value: Any) -> Choice:
    if value is None:
        return "auto"
    if value in ("none", "auto", "required"):
        return value
    if isinstance(value, dict) and value.get("type") == "function" and isinstance(value.get("name"), str):
        return value["name"]
    raise invalid("tool_choice", 'must be "none", "auto", "required" or {"type": "function", "name": ...}')


def responses_request(body: dict, context: list[dict] = ()) -> tuple[GenerationRequest, bool]:
    """The engine request for a Responses body after `context`, and whether a call is forced."""
    tools = plan(functions(body.get("tools") or []), tool_choice(body.get("tool_choice")))
    grammar = text_grammar(body.get("text"))
    if tools.forced and grammar is not None:
        raise invalid("text", "a JSON format cannot be combined with a forced tool call")
    request = inference.build_request(
        {**body, "max_tokens": body.get("max_output_tokens")},
        grammar=tools.grammar or grammar,
        tools=tools.tools,
        messages=input_messages(body, context),
    )
    return request, tools.forced


@blp.route("/responses")
class Responses(MethodView):
    @blp.arguments(ResponsesRequestSchema)
    @blp.response(200, ResponseObjectSchema)
    @blp.alt_response(200, schema=StreamEventSchema, content_type="text/event-stream", success=True)
    @blp.generation_errors()
    def post(self, body: dict):
        """A model response (OpenAI Responses API); `stream: true` sends the typed event sequence
        (`response.created` ... `response.output_text.delta` ... `response.completed`)."""
        keeping = stored.plan(body)
        request, forced = responses_request(body, keeping.context)
        writer = ResponseWriter(body, request.model, forced)
        writer.base.update(keeping.fields())
        sampling = request.sampling  # the values this response was generated with
        writer.base.update(temperature=sampling.temperature, top_p=sampling.top_p)
        if keeping.background:
            return jsonify(keeping.queue(writer.response(QUEUED), body))
        if keeping.store:
            writer.on_done = lambda response: keeping.save(response, body)
        endpoint = "v1_responses_stream" if body["stream"] else "v1_responses"
        if body["stream"] and not forced:
            return inference.stream_response([request], writer, endpoint, body)
        result = inference.run_completion(request, endpoint, body)
        frames = writer.whole(result.text, result.tool_calls, result.finish_reason, result.usage)
        if body["stream"]:  # a forced call is known whole only once generated
            return replay([frames])
        return jsonify(writer.last)
