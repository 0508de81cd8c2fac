"""Request, response and stream schemas. Sampling fields are defined once, here, and reused."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from app.api.field_policy import RefusingSchema

ROLES = ("system", "user", "assistant")
MAX_STOP = 8
MAX_TOKEN_ID = 999_999_999  # above every vocabulary; keeps ids within the engine's integer types
MAX_TIMEOUT_SECONDS = 86_400
MIN_REPETITION_PENALTY = 0.01


class StrictSchema(RefusingSchema):
    """Unknown fields are refused (422 naming them), never silently ignored; a published field that asks
    for what this server cannot do is refused by name (400, see app/api/field_policy.py)."""

    class Meta:
        ordered = True


class StopField(fields.Field):
    """A string or a list of strings (OpenAI's shape), at most `most` of them; always loaded as a list."""

    def __init__(self, *, most: int = MAX_STOP, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.most = most

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[str]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
            raise ValidationError("Must be a non-empty string or a list of non-empty strings.")
        if len(items) > self.most:
            raise ValidationError(f"At most {self.most} stop strings.")
        return items


class CommonSamplingSchema(StrictSchema):
    """Sampling fields shared by the native API and /v1, defined once."""

    temperature = fields.Float(
        load_default=None,
        validate=validate.Range(min=0, max=2),
        metadata={
            "description": "Sampling temperature, 0 to 2; 0 is greedy (deterministic). "
            "Default: LLM_DEFAULT_TEMPERATURE (0.7).",
            "example": 0.7,
        },
    )
    top_p = fields.Float(
        load_default=None,
        validate=validate.Range(min=0, max=1, min_inclusive=False),
        metadata={
            "description": "Nucleus sampling mass, above 0 up to 1. Default: LLM_DEFAULT_TOP_P (0.9).",
            "example": 0.9,
        },
    )
    top_k = fields.Integer(
        strict=True,
        load_default=None,
        validate=validate.Range(min=1, max=MAX_TOKEN_ID),
        metadata={"description": f"Sample from the k most likely tokens, 1 to {MAX_TOKEN_ID}. Default: off."},
    )
    min_p = fields.Float(
        load_default=None,
        validate=validate.Range(min=0, max=1),
        metadata={"description": "Drop tokens below min_p x the top probability, 0 to 1. Default: off."},
    )
    presence_penalty = fields.Float(
        load_default=None,
        validate=validate.Range(min=-2, max=2),
        metadata={"description": "Penalty for tokens already present, -2 to 2. Default: 0."},
    )
    frequency_penalty = fields.Float(
        load_default=None,
        validate=validate.Range(min=-2, max=2),
        metadata={"description": "Penalty growing with a token's count so far, -2 to 2. Default: 0."},
    )
    repetition_penalty = fields.Float(
        load_default=None,
        validate=validate.Range(min=MIN_REPETITION_PENALTY, max=2),
        metadata={
            "description": f"Multiplicative repetition penalty, {MIN_REPETITION_PENALTY} to 2 (smaller "
            "values overflow the model's scores). Default: off."
        },
    )
    logit_bias = fields.Dict(
        keys=fields.String(
            validate=validate.Regexp(
                r"^\d{1,9}$", error=f"Keys must be token ids (0 to {MAX_TOKEN_ID}) written as strings."
            )
        ),
        values=fields.Float(validate=validate.Range(min=-100, max=100)),
        load_default=None,
        metadata={"description": "Token id (as a string) -> bias from -100 to 100. Default: none."},
    )
    ignore_eos = fields.Boolean(
        load_default=False,
        metadata={
            "description": "Generate on past the model's end-of-text and end-of-turn tokens, to max_tokens "
            "or a stop string (as vLLM and llama.cpp's server offer: load tests, long answers). "
            "Default: false.",
        },
    )
    stop = StopField(
        load_default=list,
        metadata={
            "description": f"A string or up to {MAX_STOP} strings; generation ends before the first one "
            "produced (finish_reason `stop`). Default: none.",
            "example": ["\n\n"],
        },
    )
    timeout = fields.Float(
        load_default=None,
        validate=validate.Range(min=0, max=MAX_TIMEOUT_SECONDS, min_inclusive=False),
        metadata={
            "description": "Seconds this request may take in all, queueing and generation, above 0 up to "
            f"{MAX_TIMEOUT_SECONDS}. At the deadline the generation is cancelled: the answer (or the "
            "stream's `done` event) carries the text so far with finish_reason `timeout`, or 504 "
            "`deadline_exceeded` if nothing was generated. Default: LLM_REQUEST_TIMEOUT_SECONDS "
            "(0: none).",
            "example": 30,
        },
    )
    seed = fields.Integer(
        strict=True,
        load_default=None,
        metadata={
            "description": "Reproducibility seed. The engine has no per-request random seed, so a "
            "seed is accepted only with temperature 0 (greedy decoding, which is reproducible); "
            "with temperature > 0 it is refused with 422. Default: none."
        },
    )


class SamplingSchema(CommonSamplingSchema):
    """The native API's generation fields."""

    model = fields.String(
        load_default=None,
        metadata={
            "description": "Model id, one of `GET /api/llms`. Default: the first allowed model.",
            "example": "HuggingFaceTB/SmolLM2-135M-Instruct",
        },
    )
    max_tokens = fields.Integer(
        strict=True,
        load_default=None,
        validate=validate.Range(min=1),
        metadata={
            "description": "Most tokens to generate, 1 to LLM_MAX_TOKENS_LIMIT (4096). "
            "Default: LLM_DEFAULT_MAX_TOKENS (512).",
            "example": 64,
        },
    )
    format = fields.Raw(
        load_default=None,
        metadata={
            "description": 'Constrain the output to JSON: `"json"` for any JSON object, or a JSON '
            "schema (object) the output must validate against. Default: none."
        },
    )
    regex = fields.String(
        load_default=None,
        validate=validate.Length(min=1),
        metadata={"description": "Constrain the output to match this regular expression. Default: none."},
    )


class GenerateRequestSchema(SamplingSchema):
    prompt = fields.String(
        required=True,
        validate=validate.Length(min=1),
        metadata={
            "description": "The prompt text.",
            "example": "Explain machine learning in simple terms.",
        },
    )
    raw = fields.Boolean(
        load_default=False,
        metadata={
            "description": "false (default): the prompt is sent as one user turn through the "
            "model's chat template, as in Ollama. true: the prompt goes to the model verbatim "
            "(no template); only on POST /api/generate, not on the stream endpoint."
        },
    )


class MessageSchema(StrictSchema):
    role = fields.String(
        required=True,
        validate=validate.OneOf(ROLES),
        metadata={"description": "One of system, user, assistant.", "example": "user"},
    )
    content = fields.String(required=True, metadata={"description": "The message text.", "example": "Hello!"})


class ChatRequestSchema(SamplingSchema):
    messages = fields.List(
        fields.Nested(MessageSchema),
        required=True,
        validate=validate.Length(min=1),
        metadata={"description": "The conversation so far, oldest first; at least one message."},
    )


class UsageSchema(Schema):
    prompt_tokens = fields.Integer(metadata={"description": "Tokens in the templated prompt."})
    completion_tokens = fields.Integer(metadata={"description": "Tokens generated."})
    total_tokens = fields.Integer(metadata={"description": "prompt_tokens + completion_tokens."})


class TimingsSchema(Schema):
    """Every duration counts from the request's arrival, so queue <= first token <= total."""

    queue_seconds = fields.Float(
        metadata={"description": "Waited for a generation slot and the runner's prefill gate."}
    )
    time_to_first_token_seconds = fields.Float(
        metadata={"description": "From the request's arrival to the first token (the queue included)."}
    )
    total_seconds = fields.Float(
        metadata={"description": "From the request's arrival to the last token: its whole life."}
    )
    completion_tokens_per_second = fields.Float(metadata={"description": "Decode speed."})


class CompletionFieldsSchema(Schema):
    model = fields.String(metadata={"description": "The model that generated."})
    finish_reason = fields.String(
        metadata={"description": "`stop` (end of text or a stop string) or `length` (max_tokens)."}
    )
    usage = fields.Nested(UsageSchema)
    timings = fields.Nested(TimingsSchema)


class GenerateResponseSchema(CompletionFieldsSchema):
    text = fields.String(metadata={"description": "The generated text."})


class ChatResponseSchema(CompletionFieldsSchema):
    message = fields.Nested(MessageSchema, metadata={"description": "The assistant's reply."})


class ErrorBodySchema(Schema):
    status = fields.Integer(metadata={"description": "The HTTP status, repeated."})
    code = fields.String(
        metadata={
            "description": "Stable machine-readable code: bad_request, validation_error, "
            "context_length_exceeded, chat_template_missing, model_not_found, not_found, "
            "method_not_allowed, overloaded, model_not_ready, engine_error, internal_error."
        }
    )
    message = fields.String(metadata={"description": "One line for humans, naming the field."})
    request_id = fields.String(metadata={"description": "Also in the X-Request-ID header."})
    details = fields.Dict(metadata={"description": "Structured context (fields, limits, ...)."})


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema)


class OllamaErrorSchema(Schema):
    error = fields.String(metadata={"description": "One line for humans (the request id: X-Request-ID)."})


class OpenAIErrorBodySchema(Schema):
    message = fields.String(metadata={"description": "One line for humans, naming the field."})
    type = fields.String(metadata={"description": "invalid_request_error or server_error."})
    param = fields.String(allow_none=True, metadata={"description": "The field at fault, if one is."})
    code = fields.String(allow_none=True, metadata={"description": "The same codes as the native API."})


class OpenAIErrorSchema(Schema):
    """OpenAI's error shape, used under /v1."""

    error = fields.Nested(OpenAIErrorBodySchema)


class StreamEventSchema(Schema):
    """One Server-Sent Event, as `event: NAME` and `data: JSON` lines (see the operation text)."""

    event = fields.String(metadata={"description": "token, done or error.", "example": "token"})
    data = fields.String(
        metadata={
            "description": "The event's payload: JSON text on one line (for /v1, `[DONE]` ends the stream).",
            "example": '{"delta":"Hello"}',
        }
    )
