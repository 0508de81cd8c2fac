"""OpenAI's Files API: upload (multipart, purpose `batch`), list, retrieve, content, delete."""

from __future__ import annotations

from flask import Response, request, stream_with_context
from flask.views import MethodView
from marshmallow import Schema, fields, validate

from app.api.base import OpenAIBlueprint
from app.api.functions import invalid
from app.api.openai import stored
from app.api.openai.responses_stored import DeletedSchema
from app.store import files

blp = OpenAIBlueprint("files", __name__, url_prefix="/v1", description="OpenAI Files API")
PURPOSES = ("batch",)
MiB = 2**20


class FileSchema(Schema):
    id = fields.String()
    object = fields.String()
    bytes = fields.Integer()
    created_at = fields.Integer()
    expires_at = fields.Integer()
    filename = fields.String()
    purpose = fields.String(metadata={"description": "batch (uploads), batch_output (a batch's results)."})
    status = fields.String()
    status_details = fields.String(allow_none=True)


class FileListSchema(Schema):
    object = fields.String()
    data = fields.List(fields.Nested(FileSchema))
    first_id = fields.String(allow_none=True)
    last_id = fields.String(allow_none=True)
    has_more = fields.Boolean()


class FileQuerySchema(Schema):
    purpose = fields.String()
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=10000))
    after = fields.String()
    order = fields.String(load_default="desc", validate=validate.OneOf(["asc", "desc"]))


def before_upload() -> None:
    """The upload's own size limit (LLM_MAX_FILE_MB) instead of the JSON bodies' 8 MiB."""
    if request.method == "POST" and request.path == "/v1/files":
        request.max_content_length = stored.store().settings.max_file_mb * MiB + MiB  # the form's own bytes


@blp.route("/files")
class Files(MethodView):
    @blp.response(200, FileSchema)
    @blp.object_errors()
    @blp.doc(
        requestBody={
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file", "purpose"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "purpose": {"type": "string", "enum": list(PURPOSES)},
                        },
                    }
                }
            }
        }
    )
    def post(self):
        """Upload a file (multipart form: `file`, `purpose` batch); at most LLM_MAX_FILE_MB."""
        purpose = request.form.get("purpose")
        upload = request.files.get("file")
        if purpose not in PURPOSES:
            raise invalid("purpose", f"must be one of {', '.join(PURPOSES)}")
        if upload is None:
            raise invalid("file", "a multipart form field 'file' is required")
        store = stored.store()
        try:
            return files.upload(
                store.db,
                stored.owner(),
                purpose,
                (upload.filename or "upload.jsonl")[:512],
                upload.stream,
                store.settings.retention_seconds,
                store.settings.max_file_mb * MiB,
            )
        finally:
            upload.close()  # the spooled temporary file werkzeug parsed the upload into

    @blp.arguments(FileQuerySchema, location="query")
    @blp.response(200, FileListSchema)
    @blp.object_errors()
    def get(self, query: dict):
        """This API key's files, newest first unless order=asc."""
        return files.listing(
            stored.store().db,
            stored.owner(),
            query.get("purpose"),
            query["limit"],
            query.get("after"),
            query["order"],
        )


@blp.route("/files/<string:file_id>")
class File(MethodView):
    @blp.response(200, FileSchema)
    @blp.object_errors()
    def get(self, file_id: str):
        """A file's description."""
        return files.file_object(files.get_row(stored.store().db, stored.owner(), file_id))

    @blp.response(200, DeletedSchema)
    @blp.object_errors()
    def delete(self, file_id: str):
        """Delete a file."""
        files.delete(stored.store().db, stored.owner(), file_id)
        return {"id": file_id, "object": "file", "deleted": True}


@blp.route("/files/<string:file_id>/content")
class Content(MethodView):
    @blp.response(200, content_type="application/octet-stream")
    @blp.object_errors()
    def get(self, file_id: str):
        """A file's bytes (a batch's output: one JSON line per request), streamed."""
        db = stored.store().db
        row = files.get_row(db, stored.owner(), file_id)
        return Response(
            stream_with_context(files.content(db, row)),
            mimetype="application/jsonl" if row.kind != "upload" else "application/octet-stream",
            headers={"Content-Length": str(row.bytes)},
        )
