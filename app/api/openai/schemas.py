"""OpenAI wire shapes for /v1 requests; the sampling fields come from the shared schema."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.api.field_policy import (
    AUDIO,
    NO_REASONING,
    PROMPT_CACHE,
    SAFETY,
    SERVICE_TIER,
    USER,
    VERBOSITY,
    WEB_SEARCH,
    asks_anything,
    given,
    no_effect,
    refused,
)
from app.api.schemas import CommonSamplingSchema, StrictSchema

MAX_CHOICES = 4
OPENAI_ROLES = ("system", "developer", "user", "assistant", "tool")


def _set_values(value: Any) -> Any:
    """A reasoning object's values that ask for something (`effort: "none"` asks for nothing)."""
    if isinstance(value, dict):
        return [v for v in value.values() if v not in (None, "none")]
    return value


class LenientSchema(Schema):
    """Nested OpenAI objects may carry fields we pass through or do not need."""

    class Meta:
        unknown = "include"


class OpenAIMessageSchema(LenientSchema):
    role = fields.String(required=True, validate=validate.OneOf(OPENAI_ROLES))
    content = fields.Raw(
        load_default=None,
        metadata={"description": 'Text, or a list of `{"type": "text", "text": ...}` parts.'},
    )
    name = fields.String()
    tool_calls = fields.List(fields.Dict())
    tool_call_id = fields.String()


class StreamOptionsSchema(StrictSchema):
    include_usage = fields.Boolean(load_default=False)


class OpenAISamplingSchema(CommonSamplingSchema):
    model = fields.String(required=True, metadata={"description": "A model id from GET /v1/models."})
    max_tokens = fields.Integer(strict=True, load_default=None, validate=validate.Range(min=1))
    max_completion_tokens = fields.Integer(strict=True, load_default=None, validate=validate.Range(min=1))
    n = fields.Integer(
        strict=True,
        load_default=1,
        validate=validate.Range(min=1, max=MAX_CHOICES),
        metadata={"description": f"Choices to generate, 1 to {MAX_CHOICES} (each its own sequence)."},
    )
    stream = fields.Boolean(load_default=False)
    stream_options = fields.Nested(StreamOptionsSchema, load_default=None)
    user = no_effect(fields.String(), USER)

    @validates_schema
    def _one_max_tokens(self, data: dict, **kwargs: Any) -> None:
        if data.get("max_tokens") and data.get("max_completion_tokens"):
            raise ValidationError("Give max_tokens or max_completion_tokens, not both.", "max_tokens")


class ChatCompletionRequestSchema(OpenAISamplingSchema):
    messages = fields.List(fields.Nested(OpenAIMessageSchema), required=True, validate=validate.Length(min=1))
    logprobs = fields.Boolean(load_default=False)
    top_logprobs = fields.Integer(strict=True, load_default=None, validate=validate.Range(min=0, max=20))
    response_format = fields.Dict(
        load_default=None,
        metadata={
            "description": '`{"type": "text"}`, `{"type": "json_object"}` or `{"type": "json_schema", '
            '"json_schema": {"name": ..., "schema": {...}}}`; JSON output is enforced by the engine\'s '
            "grammar."
        },
    )
    tools = fields.List(fields.Dict(), load_default=None)
    tool_choice = fields.Raw(
        load_default=None,
        metadata={"description": '"none", "auto", "required" or {"type": "function", "function": {"name"}}.'},
    )
    parallel_tool_calls = fields.Boolean(
        allow_none=True, metadata={"description": "Accepted; one call per turn is made."}
    )
    store = no_effect(fields.Boolean(), "chat completions are not stored (Responses are).")
    metadata = no_effect(fields.Dict(), "chat completions are not stored.")
    service_tier = no_effect(fields.String(), SERVICE_TIER)
    prompt_cache_key = no_effect(fields.String(), PROMPT_CACHE)
    prompt_cache_retention = no_effect(fields.String(), PROMPT_CACHE)
    safety_identifier = no_effect(fields.String(), SAFETY)
    modalities = fields.List(
        fields.String(validate=validate.OneOf(["text"], error="Only text output: audio is not supported.")),
        allow_none=True,
        metadata={"description": 'Only ["text"]; audio output is refused.'},
    )
    audio = refused(AUDIO, asks=given)
    prediction = refused("predicted outputs are not supported.", asks=given)
    web_search_options = refused(WEB_SEARCH, asks=given)
    reasoning_effort = refused(NO_REASONING, asks=lambda value: value not in (None, "none"))
    verbosity = refused(VERBOSITY, asks=lambda value: value not in (None, "medium"))
    functions = refused("the deprecated `functions` are not supported: send `tools`.")
    function_call = refused("the deprecated `function_call` is not supported: send `tool_choice`.")


class CompletionRequestSchema(OpenAISamplingSchema):
    prompt = fields.String(required=True, validate=validate.Length(min=1))
    echo = refused("echoing the prompt back is not supported.")
    suffix = refused("insertion (text after the completion) is not supported.")
    best_of = refused(
        "best_of is not supported: send `n` for several choices.", asks=lambda value: value not in (None, 1)
    )
    logprobs = refused(
        "raw completions return no log probabilities: /v1/chat/completions does (`logprobs`).",
        asks=lambda value: value is not None,
    )


class ModelObjectSchema(Schema):
    id = fields.String()
    object = fields.String()
    created = fields.Integer()
    owned_by = fields.String()


class ModelListSchema(Schema):
    object = fields.String()
    data = fields.List(fields.Nested(ModelObjectSchema))


class OpenAIResponseSchema(Schema):
    """`chat.completion` / `text_completion` objects, as OpenAI documents them."""

    id = fields.String()
    object = fields.String()
    created = fields.Integer()
    model = fields.String()
    choices = fields.List(fields.Dict())
    usage = fields.Dict()


class ResponsesRequestSchema(CommonSamplingSchema):
    """OpenAI's Responses API request."""

    model = fields.String(required=True, metadata={"description": "A model id from GET /v1/models."})
    input = fields.Raw(
        required=True,
        metadata={
            "description": "A string (one user message), or a list of items: messages "
            '(`{"role", "content"}`, content a string or `input_text`/`output_text` parts), '
            "`function_call` and `function_call_output` items."
        },
    )
    instructions = fields.String(
        load_default=None, allow_none=True, metadata={"description": "A system message."}
    )
    max_output_tokens = fields.Integer(strict=True, load_default=None, validate=validate.Range(min=1))
    stream = fields.Boolean(load_default=False)
    text = fields.Dict(
        load_default=None,
        metadata={
            "description": '`{"format": {"type": "text" | "json_object" | "json_schema", "schema": {...}}}`; '
            "JSON output is enforced by the engine's grammar."
        },
    )
    tools = fields.List(
        fields.Dict(),
        load_default=None,
        metadata={
            "description": 'Function tools: `{"type": "function", "name", "description", "parameters"}`.'
        },
    )
    tool_choice = fields.Raw(
        load_default=None,
        metadata={"description": '"none", "auto", "required" or {"type": "function", "name": ...}.'},
    )
    parallel_tool_calls = fields.Boolean(metadata={"description": "Accepted; one call per turn is made."})
    store = fields.Boolean(
        load_default=None,
        allow_none=True,
        metadata={
            "description": "Keep the response (default true; LLM_STORE_RESPONSES=false stores none): "
            "GET /v1/responses/{id}, input_items, previous_response_id."
        },
    )
    background = fields.Boolean(
        load_default=False,
        metadata={
            "description": "Answer at once with status `queued`; the response runs in the lowest lane "
            "(the capacity interactive requests leave). Poll GET /v1/responses/{id}; cancel with POST "
            "/v1/responses/{id}/cancel."
        },
    )
    previous_response_id = fields.String(
        load_default=None,
        allow_none=True,
        metadata={"description": "Continue a stored response: its turns (and function calls) come first."},
    )
    metadata = fields.Dict(load_default=None, allow_none=True, metadata={"description": "Echoed back."})
    user = no_effect(fields.String(), USER)
    service_tier = no_effect(fields.String(), SERVICE_TIER)
    prompt_cache_key = no_effect(fields.String(), PROMPT_CACHE)
    prompt_cache_retention = no_effect(fields.String(), PROMPT_CACHE)
    safety_identifier = no_effect(fields.String(), SAFETY)
    stream_options = no_effect(fields.Dict(), "stream events are not obfuscated (no padding field).")
    reasoning = refused(NO_REASONING, asks=lambda value: asks_anything(_set_values(value)))
    include = refused(
        "no extra output data (encrypted reasoning, log probabilities, tool sources) is produced."
    )
    top_logprobs = refused(
        "the Responses API returns no log probabilities here.", asks=lambda v: v not in (None, 0)
    )
    conversation = refused("conversations are not stored: send previous_response_id.")
    prompt = refused("stored prompt templates are not supported: send the input.")
    max_tool_calls = fields.Integer(
        allow_none=True,
        validate=validate.Range(min=1),
        metadata={"description": "Accepted: one call a turn."},
    )
    truncation = fields.String(
        validate=validate.OneOf(["disabled"]),
        metadata={"description": "Only `disabled`: a prompt over the context is refused (400)."},
    )


class ResponseObjectSchema(Schema):
    """A `response` object, as OpenAI documents it."""

    id = fields.String()
    object = fields.String()
    created_at = fields.Integer()
    status = fields.String(
        metadata={
            "description": "completed, incomplete (see incomplete_details), failed; a background "
            "response is first queued, then in_progress, and may end cancelled."
        }
    )
    model = fields.String()
    output = fields.List(fields.Dict(), metadata={"description": "`message` and `function_call` items."})
    usage = fields.Dict(metadata={"description": "input_tokens, output_tokens, total_tokens."})
    incomplete_details = fields.Dict(allow_none=True)
    error = fields.Dict(allow_none=True)
    instructions = fields.String(allow_none=True)
    max_output_tokens = fields.Integer(allow_none=True)
    metadata = fields.Dict(allow_none=True)
    parallel_tool_calls = fields.Boolean()
    previous_response_id = fields.String(allow_none=True)
    store = fields.Boolean(metadata={"description": "Whether the response is stored."})
    background = fields.Boolean(metadata={"description": "Whether it runs in the background."})
    temperature = fields.Float(allow_none=True)
    top_p = fields.Float(allow_none=True)
    text = fields.Dict(metadata={"description": "The output format (`format`)."})
    tool_choice = fields.Raw()
    tools = fields.List(fields.Dict())
    truncation = fields.String()
    user = fields.String(allow_none=True)
    completed_at = fields.Integer(allow_none=True, metadata={"description": "When it completed (else null)."})
    presence_penalty = fields.Float()
    frequency_penalty = fields.Float()
    top_logprobs = fields.Integer()
    reasoning = fields.Dict(allow_none=True, metadata={"description": "Always null: no reasoning models."})
    max_tool_calls = fields.Integer(allow_none=True)
    service_tier = fields.String()
    safety_identifier = fields.String(allow_none=True)
    prompt_cache_key = fields.String(allow_none=True)
