"""POST /api/tokenize and /api/detokenize: a model's tokens without generating."""

from __future__ import annotations

from flask.views import MethodView
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.api import inference
from app.api.base import Blueprint
from app.api.schemas import MAX_TOKEN_ID, MessageSchema, StrictSchema
from app.engine import tokens

blp = Blueprint("tokens", __name__, url_prefix="/api", description="Tokenization")

MAX_IDS = 131_072
MODEL = fields.String(
    load_default=None, metadata={"description": "Model id, one of `GET /api/llms`. Default: the first one."}
)


class TokenizeRequestSchema(StrictSchema):
    model = MODEL
    text = fields.String(metadata={"description": "Text to tokenize as it is."})
    messages = fields.List(
        fields.Nested(MessageSchema),
        validate=validate.Length(min=1),
        metadata={
            "description": "A conversation, tokenized through the model's chat template with the "
            "assistant's turn opened: exactly the prompt a chat request would read."
        },
    )
    add_special_tokens = fields.Boolean(
        load_default=False,
        metadata={
            "description": "With `text`: add the tokenizer's special tokens (BOS). Default: false, "
            "so that detokenizing gives the text back."
        },
    )
    with_pieces = fields.Boolean(
        load_default=False, metadata={"description": "Also return each token's text."}
    )

    @validates_schema
    def _one_input(self, data: dict, **kwargs) -> None:
        if ("text" in data) == ("messages" in data):
            raise ValidationError("Give either text or messages.", "text")


class TokenizeResponseSchema(Schema):
    model = fields.String()
    tokens = fields.List(fields.Integer(), metadata={"description": "The token ids."})
    count = fields.Integer(metadata={"description": "len(tokens)."})
    max_context = fields.Integer(allow_none=True, metadata={"description": "The model's context length."})
    pieces = fields.List(fields.String(), metadata={"description": "Each token's text (with_pieces)."})
    prompt = fields.String(metadata={"description": "The templated prompt (for messages)."})


class DetokenizeRequestSchema(StrictSchema):
    model = MODEL
    tokens = fields.List(
        fields.Integer(strict=True, validate=validate.Range(min=0, max=MAX_TOKEN_ID)),
        required=True,
        validate=validate.Length(max=MAX_IDS),
        metadata={"description": f"Token ids, at most {MAX_IDS}."},
    )
    skip_special_tokens = fields.Boolean(
        load_default=False, metadata={"description": "Leave out special tokens. Default: false."}
    )


class DetokenizeResponseSchema(Schema):
    model = fields.String()
    text = fields.String()


@blp.route("/tokenize")
class Tokenize(MethodView):
    @blp.arguments(TokenizeRequestSchema)
    @blp.response(200, TokenizeResponseSchema)
    @blp.generation_errors()
    def post(self, body: dict):
        """A text's or a conversation's token ids (count them without generating; no slot taken)."""
        with inference.leased(body["model"]) as model:
            answer: dict = {"model": model.model_id, "max_context": model.context_length}
            if "messages" in body:
                answer["prompt"] = tokens.prompt(model, body["messages"])
                ids = tokens.tokenize(model, answer["prompt"], False)
            else:
                ids = tokens.tokenize(model, body["text"], body["add_special_tokens"])
            answer.update(tokens=ids, count=len(ids))
            if body["with_pieces"]:
                answer["pieces"] = tokens.pieces(model, ids)
            return answer


@blp.route("/detokenize")
class Detokenize(MethodView):
    @blp.arguments(DetokenizeRequestSchema)
    @blp.response(200, DetokenizeResponseSchema)
    @blp.generation_errors()
    def post(self, body: dict):
        """Token ids back to text."""
        with inference.leased(body["model"]) as model:
            text = tokens.detokenize(model, body["tokens"], body["skip_special_tokens"])
            return {"model": model.model_id, "text": text}
