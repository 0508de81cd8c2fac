"""Ollama's model management under /ollama, on the admin scope: `/api/pull` and `/api/delete` in
Ollama's shapes, and `keep_alive: 0` (unload after the answer) for chat and generate. The work is
app.engine.models_admin's, as under /api/admin."""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Response, jsonify
from flask.views import MethodView

from app.api import auth
from app.api.admin import pulls
from app.api.base import OllamaAdminBlueprint
from app.api.functions import invalid
from app.api.inference import check_model, services
from app.api.ollama.schemas import OllamaDeleteSchema, OllamaObjectSchema, OllamaPullSchema
from app.engine.faults import ModelBusy
from app.engine.models_admin import PULLING_MANIFEST, SUCCESS, ModelAdmin, PullStep
from app.errors import ApiError

logger = logging.getLogger(__name__)

blp = OllamaAdminBlueprint(
    "ollama_admin", __name__, url_prefix="/ollama", description="Ollama API: model management (admin scope)"
)
PULL_STREAM = (
    'With `stream` true (the default): NDJSON, `{"status": "pulling manifest"}`, then '
    '`{"status": "downloading REPO", "digest", "total", "completed"}` lines, then `{"status": "success"}`; '
    'a failure after the first line is a last line `{"error": "..."}`'
)
_ZERO = re.compile(r"0+(\.0*)?(ns|us|µs|ms|s|m|h)?")


def _name(body: dict) -> str:
    name = body.get("model") or body.get("name")
    if not name:
        raise invalid("model", "required")
    return name.removesuffix(":latest")


def _admin(name: str) -> ModelAdmin:
    check_model(name)
    return ModelAdmin(services().pool)


def _ollama_step(step: PullStep) -> dict:
    if step.status in (PULLING_MANIFEST, SUCCESS):
        return {"status": step.status}
    return {
        "status": f"downloading {step.repo}",
        "digest": step.commit,
        "total": step.total,
        "completed": step.completed,
    }


def _ollama_error(error: ApiError) -> dict:
    return {"error": error.message}


@blp.route("/api/pull")
class Pull(MethodView):
    @blp.arguments(OllamaPullSchema)
    @blp.response(200, OllamaObjectSchema)
    @blp.alt_response(200, description=PULL_STREAM, content_type=pulls.MIMETYPE, success=True)
    @blp.admin_errors()
    def post(self, body: dict):
        """Download a model from the hub (HF_ENDPOINT) into HF_HOME; `stream: false` answers one
        `{"status": "success"}` at the end."""
        name = _name(body)
        pull = _admin(name).pull(name)
        if body["stream"]:
            return pulls.stream(pull, _ollama_step, _ollama_error)
        pulls.last_step(pull)
        return jsonify({"status": SUCCESS})


@blp.route("/api/delete")
class Delete(MethodView):
    @blp.arguments(OllamaDeleteSchema)
    @blp.response(200, description="An empty body")
    @blp.admin_errors()
    def delete(self, body: dict):
        """Delete a model from the Hugging Face cache; 404 when the cache does not have it, 409 while
        it is loaded."""
        name = _name(body)
        _admin(name).delete(name)
        return Response(status=200)


# -- keep_alive ---------------------------------------------------------------------------------
def unload_requested(body: dict) -> bool:
    """Whether `keep_alive` asks to unload the model after the answer (0, "0", "0s", ...): that
    needs the admin scope (403 otherwise, before anything runs). Other values change nothing here:
    residency follows LLM_MAX_LOADED_MODELS."""
    value: Any = body.get("keep_alive")
    zero = (isinstance(value, int | float) and not isinstance(value, bool) and value == 0) or (
        isinstance(value, str) and _ZERO.fullmatch(value.strip()) is not None
    )
    if zero:
        auth.require_admin(services().settings, "keep_alive 0 (unloading the model)")
        check_model(body["model"])
    return zero


def unload(model: str) -> bool:
    """Unload `model` through the admin's unload; a model other requests still use stays (logged)."""
    try:
        return ModelAdmin(services().pool).unload(model)["unloaded"]
    except ModelBusy as busy:
        logger.info("keep_alive 0: model %s stays loaded (%s)", model, busy)
        return False


def unload_when_closed(response: Response, model: str) -> Response:
    """Unload `model` once the answer (a stream too) has been sent and its session released."""
    admin = ModelAdmin(services().pool)

    def after() -> None:
        try:
            admin.unload(model)
        except ModelBusy as busy:
            logger.info("keep_alive 0: model %s stays loaded (%s)", model, busy)
        except Exception:  # the answer is sent: nothing to tell the client
            logger.exception("keep_alive 0: unloading model %s failed", model)

    response.call_on_close(after)
    return response
