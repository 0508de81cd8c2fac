"""OpenAI's Batch API: create from an uploaded file, retrieve, list, cancel."""

from __future__ import annotations

from flask.views import MethodView
from marshmallow import Schema, fields, validate

from app.api.base import OpenAIBlueprint
from app.api.openai import stored
from app.store import batches

blp = OpenAIBlueprint("batches", __name__, url_prefix="/v1", description="OpenAI Batch API")


class BatchRequestSchema(Schema):
    input_file_id = fields.String(required=True, metadata={"description": "An uploaded file, purpose batch."})
    endpoint = fields.String(required=True, validate=validate.OneOf(batches.ENDPOINTS))
    completion_window = fields.String(required=True, validate=validate.OneOf(list(batches.WINDOWS)))
    metadata = fields.Dict(keys=fields.String(), values=fields.String(), load_default=None, allow_none=True)


class BatchSchema(Schema):
    id = fields.String()
    object = fields.String()
    endpoint = fields.String()
    errors = fields.Dict(allow_none=True, metadata={"description": "The input's bad lines, when it failed."})
    input_file_id = fields.String()
    completion_window = fields.String()
    status = fields.String(
        metadata={
            "description": "in_progress, finalizing, completed, failed, expired, cancelling, cancelled."
        }
    )
    output_file_id = fields.String(allow_none=True)
    error_file_id = fields.String(allow_none=True)
    created_at = fields.Integer()
    expires_at = fields.Integer(allow_none=True)
    in_progress_at = fields.Integer(allow_none=True)
    finalizing_at = fields.Integer(allow_none=True)
    completed_at = fields.Integer(allow_none=True)
    failed_at = fields.Integer(allow_none=True)
    expired_at = fields.Integer(allow_none=True)
    cancelling_at = fields.Integer(allow_none=True)
    cancelled_at = fields.Integer(allow_none=True)
    request_counts = fields.Dict(metadata={"description": "total, completed, failed."})
    metadata = fields.Dict(allow_none=True)


class BatchListSchema(Schema):
    object = fields.String()
    data = fields.List(fields.Nested(BatchSchema))
    first_id = fields.String(allow_none=True)
    last_id = fields.String(allow_none=True)
    has_more = fields.Boolean()


class BatchQuerySchema(Schema):
    after = fields.String()
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


def traceparent() -> str | None:
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


@blp.route("/batches")
class Batches(MethodView):
    @blp.arguments(BatchRequestSchema)
    @blp.response(200, BatchSchema)
    @blp.object_errors()
    def post(self, body: dict):
        """Create a batch: its input is checked line by line at once (a bad input fails naming the
        lines); its items then run in the lowest lane."""
        store = stored.store()
        batch = batches.create(
            store.db,
            stored.owner(),
            body,
            retention=store.settings.retention_seconds,
            max_items=store.settings.max_batch_items,
            traceparent=traceparent(),
        )
        store.work.wake()
        return batch

    @blp.arguments(BatchQuerySchema, location="query")
    @blp.response(200, BatchListSchema)
    @blp.object_errors()
    def get(self, query: dict):
        """This API key's batches, newest first."""
        return batches.listing(stored.store().db, stored.owner(), query.get("after"), query["limit"])


@blp.route("/batches/<string:batch_id>")
class Batch(MethodView):
    @blp.response(200, BatchSchema)
    @blp.object_errors()
    def get(self, batch_id: str):
        """A batch, with its request counts."""
        return batches.get(stored.store().db, stored.owner(), batch_id)


@blp.route("/batches/<string:batch_id>/cancel")
class Cancel(MethodView):
    @blp.response(200, BatchSchema)
    @blp.object_errors()
    def post(self, batch_id: str):
        """Cancel a batch: nothing more starts; the items running end at once (cancelling, then cancelled)."""
        store = stored.store()
        batch = batches.cancel(store.db, stored.owner(), batch_id)
        store.work.cancel_batch_local(batch_id)
        store.work.wake()
        return batch
