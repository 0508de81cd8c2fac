"""Ollama's request bodies. `options` are the shared sampling fields under Ollama's names (one mapping:
`data_key`), loaded as our own names so that the native request builder reads them unchanged."""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, INCLUDE, Schema, ValidationError, fields, validate, validates_schema

from app.api.embeddings import InputField
from app.api.field_policy import no_effect, refused
from app.api.schemas import MIN_REPETITION_PENALTY, CommonSamplingSchema, StopField, StrictSchema

OLLAMA_ROLES = ("system", "user", "assistant", "tool")
RUNNER = "it tunes how Ollama runs its own model (threads, GPUs, memory); this server's settings decide."
# Ollama sets no limit; Continue's autocomplete sends its template's stops and its own (up to 15).
OLLAMA_MAX_STOP = 32
NO_MIROSTAT = "the engine has no mirostat sampler: send 0 (off) or leave it out."


def _runner(field: fields.Field) -> fields.Field:
    return no_effect(field, RUNNER)


class OptionsSchema(CommonSamplingSchema):
    """Ollama's `options`: the sampling ones a text model has here, under Ollama's names. The options that
    tune Ollama's own runner (num_thread, num_gpu, use_mmap...), which Continue and Open WebUI send when
    their user sets them, are accepted with no effect; `mirostat` other than 0 is refused by name, and so
    is any option not listed here."""

    class Meta:
        exclude = ("logit_bias", "timeout", "ignore_eos")

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
    stop = StopField(
        most=OLLAMA_MAX_STOP,
        load_default=list,
        metadata={"description": f"A string or up to {OLLAMA_MAX_STOP} strings; the answer ends before one."},
    )
    num_ctx = fields.Integer(
        strict=True,
        load_default=None,
        validate=validate.Range(min=1),
        metadata={"description": "Context size: accepted, the model's own context length applies."},
    )
    mirostat = refused(NO_MIROSTAT)
    mirostat_eta = no_effect(fields.Float(), "used only by mirostat, which is off here.")
    mirostat_tau = no_effect(fields.Float(), "used only by mirostat, which is off here.")
    num_thread = _runner(fields.Integer())
    num_gpu = _runner(fields.Integer())
    main_gpu = _runner(fields.Integer())
    num_batch = _runner(fields.Integer())
    num_keep = _runner(fields.Integer())
    low_vram = _runner(fields.Boolean())
    use_mmap = _runner(fields.Boolean())
    use_mlock = _runner(fields.Boolean())
    numa = _runner(fields.Boolean())
    vocab_only = _runner(fields.Boolean())


class ToolCallSchema(Schema):
    """A call in an assistant message. Open WebUI sends the OpenAI call's `id` and `index` along: ignored, as
    Ollama does (the call is matched by its place in the conversation)."""

    class Meta:
        unknown = EXCLUDE

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
