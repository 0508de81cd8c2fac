"""Anthropic Messages API wire shapes for /v1/messages requests."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.api.field_policy import NO_REASONING, SERVICE_TIER, no_effect, refused
from app.api.schemas import CommonSamplingSchema, StopField, StrictSchema


def _thinks(value: object) -> bool:
    """`thinking` asks for something unless it is null or `{"type": "disabled"}`."""
    return value is not None and not (isinstance(value, dict) and value.get("type") == "disabled")


class AnthropicMessageSchema(Schema):
    class Meta:
        unknown = "include"  # blocks may carry fields (cache_control, citations) we do not need

    role = fields.String(required=True, validate=validate.OneOf(["user", "assistant"]))
    content = fields.Raw(
        required=True,
        metadata={"description": "Text, or a list of `text`, `tool_use` and `tool_result` blocks."},
    )


class CountTokensRequestSchema(StrictSchema):
    """What a prompt is made of: enough to count its tokens."""

    model = fields.String(required=True, metadata={"description": "A model id from GET /v1/models."})
    messages = fields.List(
        fields.Nested(AnthropicMessageSchema), required=True, validate=validate.Length(min=1)
    )
    system = fields.Raw(load_default=None, metadata={"description": "A string, or a list of text blocks."})
    tools = fields.List(
        fields.Dict(),
        load_default=None,
        metadata={"description": "Client tools: `{name, description, input_schema}`."},
    )
    tool_choice = fields.Dict(
        load_default=None,
        metadata={"description": '`{"type": "auto" | "any" | "none"}` or `{"type": "tool", "name": ...}`.'},
    )
    cache_control = no_effect(fields.Dict(), "the prefix cache reuses every recurring prefix by itself.")
    thinking = refused(NO_REASONING, asks=_thinks)
    output_config = refused(
        "output effort and output formats are not supported: force a tool for structured output."
    )


class MessagesRequestSchema(CommonSamplingSchema, CountTokensRequestSchema):
    class Meta:
        exclude = ("stop",)  # Anthropic's name is stop_sequences

    max_tokens = fields.Integer(
        strict=True,
        required=True,
        validate=validate.Range(min=1),
        metadata={"description": "Most tokens to generate (required, as Anthropic requires it)."},
    )
    stop_sequences = StopField(load_default=None, metadata={"description": "Strings that end the turn."})
    stream = fields.Boolean(load_default=False)
    metadata = fields.Dict(load_default=None, metadata={"description": "Accepted (`user_id`)."})
    service_tier = no_effect(fields.String(), SERVICE_TIER)
    inference_geo = no_effect(fields.String(), "inference runs on this host.")
    container = refused("code execution containers are not supported.")


class MessageObjectSchema(Schema):
    id = fields.String()
    type = fields.String()
    role = fields.String()
    model = fields.String()
    content = fields.List(fields.Dict(), metadata={"description": "`text` and `tool_use` blocks."})
    stop_reason = fields.String(
        metadata={"description": "end_turn, max_tokens, stop_sequence, tool_use, or timeout."}
    )
    stop_sequence = fields.String(allow_none=True)
    stop_details = fields.Dict(allow_none=True)
    container = fields.Dict(allow_none=True)
    usage = fields.Dict(metadata={"description": "input_tokens, output_tokens, and the cache counts (0)."})


class TokenCountSchema(Schema):
    input_tokens = fields.Integer()


class AnthropicErrorBodySchema(Schema):
    type = fields.String(metadata={"description": "invalid_request_error, authentication_error, ..."})
    message = fields.String()
    code = fields.String(metadata={"description": "The same codes as the native API."})
    details = fields.Dict(metadata={"description": "Structured context (fields, limits, ...)."})


class AnthropicErrorSchema(Schema):
    """Anthropic's error shape, on every /v1/messages route."""

    type = fields.String(metadata={"example": "error"})
    error = fields.Nested(AnthropicErrorBodySchema)
    request_id = fields.String()
