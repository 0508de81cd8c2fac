"""POST /v1/embeddings (OpenAI's shape) and POST /api/embed (native): vectors from an embedding model,
each request in a session of its own (model lease, slot, metrics, span, log line)."""

from __future__ import annotations

import base64
import struct
from typing import Any

from flask import jsonify
from flask.views import MethodView
from marshmallow import Schema, ValidationError, fields, validate

from app.api import inference
from app.api.base import Blueprint, OpenAIBlueprint
from app.api.field_policy import USER, no_effect, refused
from app.api.schemas import MAX_TOKEN_ID, StrictSchema
from app.engine.types import EmbeddingRequest, Embeddings

blp = Blueprint("embed", __name__, url_prefix="/api", description="Embeddings")
v1 = OpenAIBlueprint("embeddings", __name__, url_prefix="/v1", description="OpenAI-compatible embeddings")

MAX_INPUTS = 256


class InputField(fields.Field):
    """A string, a list of strings, a list of token ids, or a list of token id lists."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> tuple:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            raise ValidationError("Must be a string or a non-empty list.")
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            value = [value]
        if len(value) > MAX_INPUTS:
            raise ValidationError(f"At most {MAX_INPUTS} inputs.")
        if all(isinstance(v, str) and v for v in value):
            return tuple(value)
        if all(_ids(v) for v in value):
            return tuple(tuple(v) for v in value)
        raise ValidationError(
            "Must be a non-empty string, a list of non-empty strings, a list of token ids or a list of "
            f"non-empty token id lists (ids 0 to {MAX_TOKEN_ID})."
        )


def _ids(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i <= MAX_TOKEN_ID for i in value)
    )


class EmbedRequestSchema(StrictSchema):
    model = fields.String(
        load_default=None, metadata={"description": "An embedding model id. Default: the first one."}
    )
    input = InputField(
        required=True,
        metadata={
            "description": f"Text, up to {MAX_INPUTS} texts, or token ids (one list or a list of lists)."
        },
    )
    timeout = fields.Float(load_default=None, validate=validate.Range(min=0, max=3600, min_inclusive=False))


class OpenAIEmbeddingsRequestSchema(EmbedRequestSchema):
    model = fields.String(required=True, metadata={"description": "An embedding model id."})
    encoding_format = fields.String(load_default="float", validate=validate.OneOf(["float", "base64"]))
    dimensions = refused("the model's vectors have their own fixed size (no shortening).")
    user = no_effect(fields.String(), USER)


class EmbedResponseSchema(Schema):
    model = fields.String()
    embeddings = fields.List(fields.List(fields.Float()), metadata={"description": "One vector per input."})
    dimensions = fields.Integer()
    usage = fields.Dict(metadata={"description": "prompt_tokens, total_tokens."})


class EmbeddingListSchema(Schema):
    object = fields.String()
    data = fields.List(
        fields.Dict(), metadata={"description": '`{"object": "embedding", "index", "embedding"}`.'}
    )
    model = fields.String()
    usage = fields.Dict()


def embed_body(body: dict, endpoint: str) -> Embeddings:
    """One session for a validated body's `input` (and `model`, else the first embedding model)."""
    model = inference.requested_model(body.get("model"), inference.first_embedding_model)
    request = EmbeddingRequest(model=model, inputs=body["input"])
    with inference.session([request], endpoint, body).open() as generation:
        return generation.results[0]


def _usage(result: Embeddings) -> dict:
    return {"prompt_tokens": result.usage.prompt_tokens, "total_tokens": result.usage.prompt_tokens}


@blp.route("/embed")
class Embed(MethodView):
    @blp.arguments(EmbedRequestSchema)
    @blp.response(200, EmbedResponseSchema)
    @blp.generation_errors()
    def post(self, body: dict):
        """Vectors for one or more inputs, L2-normalised as the model's pooling makes them."""
        result = embed_body(body, "embed")
        return {
            "model": result.model,
            "embeddings": result.vectors,
            "dimensions": len(result.vectors[0]) if result.vectors else 0,
            "usage": _usage(result),
        }


def _encoded(vector: list[float], encoding: str) -> Any:
    if encoding == "base64":  # little-endian float32, as OpenAI sends it
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


@v1.route("/embeddings")
class OpenAIEmbeddings(MethodView):
    @v1.arguments(OpenAIEmbeddingsRequestSchema)
    @v1.response(200, EmbeddingListSchema)
    @v1.generation_errors()
    def post(self, body: dict):
        """Embeddings in OpenAI's shape (`encoding_format` float or base64)."""
        result = embed_body(body, "v1_embeddings")
        data = [
            {"object": "embedding", "index": i, "embedding": _encoded(v, body["encoding_format"])}
            for i, v in enumerate(result.vectors)
        ]
        return jsonify({"object": "list", "data": data, "model": result.model, "usage": _usage(result)})
