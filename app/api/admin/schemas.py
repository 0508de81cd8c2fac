"""The admin routes' bodies and answers."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.api.schemas import StrictSchema

_MODEL = {"description": "A model id (ORG/NAME on the hub) or a catalog alias."}


class AdminModelSchema(StrictSchema):
    model = fields.String(required=True, validate=validate.Length(min=1, max=256), metadata=_MODEL)


class PullRequestSchema(AdminModelSchema):
    revision = fields.String(
        load_default=None,
        validate=[
            validate.Length(min=1, max=256),
            validate.Regexp(r"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._/-]*$", error="Not a branch, tag or commit."),
        ],
        metadata={"description": "Branch, tag or commit (default: the catalog's, else main)."},
    )
    files = fields.List(
        fields.String(validate=validate.Length(min=1, max=512)),
        load_default=list,
        metadata={"description": "The GGUF file(s) to fetch, for a repo with several."},
    )
    stream = fields.Boolean(
        load_default=True, metadata={"description": "NDJSON progress lines (default), or one answer."}
    )


class PullResultSchema(Schema):
    status = fields.String(metadata={"description": "`success`"})
    model = fields.String(metadata={"description": "The hub repo fetched."})
    revision = fields.String(metadata={"description": "Its commit."})
    completed = fields.Integer()
    total = fields.Integer()
    location = fields.String(metadata={"description": "The snapshot directory under HF_HOME."})
    files = fields.List(fields.String())


class ResidentModelSchema(Schema):
    id = fields.String()
    state = fields.String(metadata={"description": "`loaded`, `loading`, `not loaded` or `failed`."})
    active_streams = fields.Integer()
    loads = fields.Integer()
    unloads = fields.Integer()
    on_disk = fields.Boolean(metadata={"description": "Found on this host without any network."})
    origin = fields.String(
        allow_none=True, metadata={"description": "hf_cache, model_path, catalog, embedded"}
    )
    location = fields.String(allow_none=True)
    size_bytes = fields.Integer(allow_none=True)


class ResidencySchema(Schema):
    models = fields.List(fields.Nested(ResidentModelSchema))
    loaded = fields.Integer(metadata={"description": "Models in memory now."})
    max_loaded_models = fields.Integer(metadata={"description": "LLM_MAX_LOADED_MODELS (0: no bound)."})
    cache = fields.String(metadata={"description": "The Hugging Face cache ($HF_HOME/hub)."})


class UnloadResultSchema(Schema):
    model = fields.String()
    unloaded = fields.Boolean(metadata={"description": "False when it was not loaded."})
    state = fields.String()


class DeleteResultSchema(Schema):
    model = fields.String()
    deleted = fields.String(metadata={"description": "The folder removed from the cache."})
    size_bytes = fields.Integer()
