"""Model management over HTTP, under /api/admin (the admin scope, app.api.access): residency, pull
into HF_HOME with progress, load, unload, and delete from the cache."""

from __future__ import annotations

from flask.views import MethodView

from app.api.admin import pulls
from app.api.admin.schemas import (
    AdminModelSchema,
    DeleteResultSchema,
    PullRequestSchema,
    PullResultSchema,
    ResidencySchema,
    UnloadResultSchema,
)
from app.api.base import AdminBlueprint
from app.api.inference import check_model, services
from app.api.native.model_schemas import ModelSchema
from app.engine.models_admin import SUCCESS, ModelAdmin, PullStep
from app.error_shapes import shaped
from app.errors import ApiError

blp = AdminBlueprint(
    "admin",
    __name__,
    url_prefix="/api/admin",
    description="Model management: needs an API key with the admin scope (or, without keys, LLM_ADMIN_OPEN)",
)
PULL_STREAM = (
    'With `stream` true (the default): NDJSON, one line per step: `{"status": "pulling manifest"}`, '
    '`{"status": "downloading", "completed", "total"}` (bytes, every half second while they grow), '
    'then `{"status": "success", "location", "files"}`; a failure after the first line is a last line '
    '`{"status": "error", "error": {...}}`'
)


def _admin(name: str) -> ModelAdmin:
    check_model(name)  # a key with a model list manages only those models
    return ModelAdmin(services().pool)


def _native_step(step: PullStep) -> dict:
    line = {"status": step.status, "model": step.repo, "revision": step.commit}
    if step.total:
        line |= {"completed": step.completed, "total": step.total}
    if step.status == SUCCESS:
        line |= {"location": step.snapshot, "files": list(step.files)}
    return line


def _native_error(error: ApiError) -> dict:
    _, body = shaped(error.status, error.code, error.message, error.details)
    return {"status": "error", **body}


@blp.route("/models")
class Models(MethodView):
    @blp.response(200, ResidencySchema)
    @blp.admin_errors()
    def get(self):
        """Residency: every model the pool knows or this host has on disk, its state and location."""
        return ModelAdmin(services().pool).residency()


@blp.route("/models/pull")
class Pull(MethodView):
    @blp.arguments(PullRequestSchema)
    @blp.response(200, PullResultSchema)
    @blp.alt_response(200, description=PULL_STREAM, content_type=pulls.MIMETYPE, success=True)
    @blp.admin_errors()
    def post(self, body: dict):
        """Download a model into HF_HOME through HF_ENDPOINT (what the engine loads: one GGUF, or the
        safetensors layout). The hub's answer about the model comes before the first line."""
        pull = _admin(body["model"]).pull(body["model"], body["revision"], tuple(body["files"]))
        if body["stream"]:
            return pulls.stream(pull, _native_step, _native_error)
        return _native_step(pulls.last_step(pull))


@blp.route("/models/load")
class Load(MethodView):
    @blp.arguments(AdminModelSchema)
    @blp.response(200, ModelSchema)
    @blp.admin_errors()
    def post(self, body: dict):
        """Load a model into the pool now (from disk, or the hub when it is on no disk), making room
        under LLM_MAX_LOADED_MODELS; a model that failed to load is tried again. Loading pauses the
        worker (the engine holds the GIL)."""
        return _admin(body["model"]).load(body["model"])


@blp.route("/models/unload")
class Unload(MethodView):
    @blp.arguments(AdminModelSchema)
    @blp.response(200, UnloadResultSchema)
    @blp.admin_errors()
    def post(self, body: dict):
        """Drop a model's runners, freeing its memory; 409 while requests use it or it is loading
        (nothing waits). Its next request, or a load, brings it back."""
        return _admin(body["model"]).unload(body["model"])


@blp.route("/models/<path:model_id>")
class Model(MethodView):
    @blp.response(200, DeleteResultSchema)
    @blp.admin_errors()
    def delete(self, model_id: str):
        """Delete a model from the Hugging Face cache (HF_HOME); 409 while it is loaded (unload it
        first), 404 when the cache does not have it."""
        return _admin(model_id).delete(model_id)
