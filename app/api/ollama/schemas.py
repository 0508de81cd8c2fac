"""Ollama's request bodies. `options` are the shared sampling fields under Ollama's names (one mapping:
`data_key`), loaded as our own names so that the native request builder reads them unchanged."""

from __future__ import annotations

from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate, validates_schema

from app.api.embeddings import InputField
from app.api.schemas import MIN_REPETITION_PENALTY, CommonSamplingSchema, StrictSchema

OLLAMA_ROLES = ("system", "user", "assistant", "tool")


class OptionsSchema(CommonSamplingSchema):
    """Ollama's `options`: the ones a text model has here. Others (num_gpu, mirostat...) are refused
    by name; `num_ctx` is checked against the model's context length."""

    class Meta:
        exclude = ("logit_bias", "timeout")

    max_tokens = fields.Integer(
        data_key="num_predict",
        strict=True,
        load_default=None,
        validate=validate.Range(min=-2),
        metadata={"description": "Most tokens to generate (-1 or -2: the server's default)."},
    )
    repetition_penalty = fields.Float(
        data_key="repeat_penalty",
        load_default=None,
        validate=validate.Range(min=MIN_REPETITION_PENALTY, max=2),
        metadata={"description": f"Repetition penalty, {MIN_REPETITION_PENALTY} to 2."},
    )
    num_ctx = fields.Integer(
        strict=True,
        load_default=None,
        validate=validate.Range(min=1),
        metadata={"description": "Context size: accepted up to the model's own context length."},
    )


class ToolCallSchema(Schema):
    function = fields.Dict(required=True, metadata={"description": "`{name, arguments}` (an object)."})


class OllamaMessageSchema(StrictSchema):
    role = fields.String(required=True, validate=validate.OneOf(OLLAMA_ROLES))
    content = fields.String(load_default="")
    images = fields.List(fields.String(), metadata={"description": "Refused: the models here read text."})
    tool_calls = fields.List(fields.Nested(ToolCallSchema), load_default=None)
    tool_name = fields.String(load_default=None)
    thinking = fields.String(load_default=None)


class _Common(StrictSchema):
    model = fields.String(required=True, validate=validate.Length(min=1))
    format = fields.Raw(load_default=None, metadata={"description": '"json" or a JSON schema.'})
    options = fields.Nested(OptionsSchema, load_default=dict)
    stream = fields.Boolean(load_default=True, metadata={"description": "NDJSON lines (default true)."})
    keep_alive = fields.Raw(
        load_default=None,
        metadata={
            "description": '0 (or "0s", ...): unload the model after the answer (needs the admin '
            "scope); other values are accepted, residency follows LLM_MAX_LOADED_MODELS."
        },
    )
    think = fields.Raw(load_default=None, metadata={"description": "Refused when true: no thinking models."})

    @validates_schema
    def _no_thinking(self, data: dict, **kwargs: Any) -> None:
        if data.get("think") not in (None, False):
            raise ValidationError("Not supported: the models here do not think out loud.", "think")


class OllamaChatSchema(_Common):
    messages = fields.List(fields.Nested(OllamaMessageSchema), load_default=list)
    tools = fields.List(fields.Dict(), load_default=list)


class OllamaGenerateSchema(_Common):
    prompt = fields.String(load_default="")
    system = fields.String(load_default=None)
    suffix = fields.String(load_default=None, metadata={"description": "Refused: no fill-in-the-middle."})
    template = fields.String(load_default=None, metadata={"description": "Refused: the model's own is used."})
    raw = fields.Boolean(load_default=False)
    images = fields.List(fields.String(), metadata={"description": "Refused: the models here read text."})
    context = fields.List(fields.Integer(), load_default=None, metadata={"description": "Refused."})


class OllamaEmbedSchema(StrictSchema):
    model = fields.String(required=True, validate=validate.Length(min=1))
    input = InputField(required=True, metadata={"description": "A string or a list of strings."})
    truncate = fields.Boolean(load_default=True)
    options = fields.Dict(load_default=dict)
    keep_alive = fields.Raw(load_default=None)
    dimensions = fields.Integer(load_default=None)


class OllamaLegacyEmbedSchema(StrictSchema):
    model = fields.String(required=True, validate=validate.Length(min=1))
    prompt = fields.String(required=True, validate=validate.Length(min=1))
    options = fields.Dict(load_default=dict)
    keep_alive = fields.Raw(load_default=None)


class OllamaShowSchema(StrictSchema):
    model = fields.String(load_default=None)
    name = fields.String(load_default=None, metadata={"description": "The older name of `model`."})
    verbose = fields.Boolean(load_default=False)


class OllamaObjectSchema(Schema):
    """An answer in Ollama's shape (documented in docs/api.md; its fields are Ollama's own)."""

    class Meta:
        unknown = INCLUDE


class OllamaPullSchema(StrictSchema):
    model = fields.String(load_default=None, validate=validate.Length(min=1, max=256))
    name = fields.String(load_default=None, metadata={"description": "The older name of `model`."})
    insecure = fields.Boolean(load_default=False, metadata={"description": "Accepted; HF_ENDPOINT decides."})
    stream = fields.Boolean(load_default=True, metadata={"description": "NDJSON progress (default true)."})


class OllamaDeleteSchema(StrictSchema):
    model = fields.String(load_default=None, validate=validate.Length(min=1, max=256))
    name = fields.String(load_default=None, metadata={"description": "The older name of `model`."})
