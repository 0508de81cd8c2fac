"""Stored responses: retrieve, delete, list input items, cancel a background one, count input tokens."""

from __future__ import annotations

import json

from flask.views import MethodView
from marshmallow import Schema, fields, validate

from app.api import inference
from app.api.base import OpenAIBlueprint
from app.api.openai import stored
from app.api.openai.responses import responses_request
from app.api.openai.schemas import ResponseObjectSchema, ResponsesRequestSchema
from app.engine import tokens
from app.errors import BadRequestError, ConflictError, UnsupportedEndpointError
from app.store import paging
from app.store import responses as rows
from app.store.responses import FINISHED

blp = OpenAIBlueprint(
    "responses_stored", __name__, url_prefix="/v1", description="OpenAI Responses API: stored"
)


class ListQuerySchema(Schema):
    after = fields.String(metadata={"description": "An item id: list the items after it."})
    before = fields.String(metadata={"description": "An item id: list the items before it."})
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    order = fields.String(load_default="desc", validate=validate.OneOf(["asc", "desc"]))


class ItemListSchema(Schema):
    object = fields.String(metadata={"description": "list"})
    data = fields.List(fields.Dict())
    first_id = fields.String(allow_none=True)
    last_id = fields.String(allow_none=True)
    has_more = fields.Boolean()


class DeletedSchema(Schema):
    id = fields.String()
    object = fields.String()
    deleted = fields.Boolean()


class InputTokensRequestSchema(ResponsesRequestSchema):
    """The body a response would have; `model` may be left out (the default model)."""

    model = fields.String(load_default=None)


class InputTokensSchema(Schema):
    object = fields.String(metadata={"description": "response.input_tokens"})
    input_tokens = fields.Integer()


def page(items: list[dict], query: dict) -> dict:
    """OpenAI's cursor pagination over `items` (oldest first)."""
    ordered = items if query["order"] == "asc" else items[::-1]
    ids = [item.get("id") for item in ordered]
    for cursor, keep_after in ((query.get("after"), True), (query.get("before"), False)):
        if cursor is None:
            continue
        if cursor not in ids:
            raise BadRequestError(f"No item with id '{cursor}' in this list", details={"param": "after"})
        at = ids.index(cursor)
        ordered, ids = (ordered[at + 1 :], ids[at + 1 :]) if keep_after else (ordered[:at], ids[:at])
    data = ordered[: query["limit"]]
    return paging.page(data, len(ordered) > len(data))


@blp.route("/responses/<string:response_id>")
class StoredResponse(MethodView):
    @blp.response(200, ResponseObjectSchema)
    @blp.object_errors()
    def get(self, response_id: str):
        """A stored response (a background one with its current status)."""
        found = rows.get(stored.store().db, stored.owner(), response_id)
        return {**found.body, "status": found.status}

    @blp.response(200, DeletedSchema)
    @blp.object_errors()
    def delete(self, response_id: str):
        """Delete a stored response (a running background one is cancelled first)."""
        store = stored.store()
        found = rows.cancel(store.db, stored.owner(), response_id)
        store.work.cancel_local(found.id)
        rows.delete(store.db, stored.owner(), response_id)
        return {"id": response_id, "object": "response", "deleted": True}


@blp.route("/responses/<string:response_id>/input_items")
class InputItems(MethodView):
    @blp.arguments(ListQuerySchema, location="query")
    @blp.response(200, ItemListSchema)
    @blp.object_errors()
    def get(self, query: dict, response_id: str):
        """The input items of a stored response, paginated (newest first unless order=asc)."""
        return page(rows.get(stored.store().db, stored.owner(), response_id).input_items, query)


@blp.route("/responses/<string:response_id>/cancel")
class Cancel(MethodView):
    @blp.response(200, ResponseObjectSchema)
    @blp.object_errors()
    def post(self, response_id: str):
        """Cancel a background response: queued, it never runs; running, its slot is freed at once."""
        store = stored.store()
        found = rows.get(store.db, stored.owner(), response_id)
        if not found.background:
            raise BadRequestError(
                "Only a background response can be cancelled", details={"param": "response_id"}
            )
        if found.status in FINISHED and found.status != rows.CANCELLED:
            raise ConflictError(
                f"Response '{response_id}' is {found.status}: only a queued or running one can be cancelled",
                details={"param": "response_id", "status": found.status},
            )
        found = rows.cancel(store.db, stored.owner(), response_id)
        store.work.cancel_local(response_id)
        return found.body


@blp.route("/responses/input_tokens")
class InputTokens(MethodView):
    @blp.arguments(InputTokensRequestSchema)
    @blp.response(200, InputTokensSchema)
    @blp.generation_errors()
    def post(self, body: dict):
        """The input tokens a response to this request would report (nothing is generated or stored)."""
        context = stored.plan({**body, "store": None, "background": False}).context
        request, _ = responses_request(body, context)
        with inference.leased(request.model) as model:
            tools = [json.loads(t) for t in request.tools] or None
            text = tokens.prompt(model, list(request.messages), tools)
            return {
                "object": "response.input_tokens",
                "input_tokens": len(tokens.tokenize(model, text, False)),
            }


@blp.route("/responses/compact")
class Compact(MethodView):
    @blp.object_errors()
    def post(self):
        """Not served: a compacted context is an opaque summary made by OpenAI's models, which a local model
        cannot read back. Always 404 `unsupported_endpoint`; continue a conversation with
        `previous_response_id` or by sending its turns."""
        raise UnsupportedEndpointError(
            "POST /v1/responses/compact: compaction is not served here; continue a conversation with "
            "previous_response_id or by sending its turns"
        )
