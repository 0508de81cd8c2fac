"""The model listing."""

from __future__ import annotations

from flask.views import MethodView

from app.api.base import Blueprint
from app.api.inference import services, visible_models
from app.api.native.model_schemas import LlmsResponseSchema

blp = Blueprint("llms", __name__, url_prefix="/api", description="Models")


@blp.route("/llms")
class Llms(MethodView):
    @blp.response(200, LlmsResponseSchema)
    def get(self):
        """Each allowed model (those the API key may use): state, error, source, context length, engine
        settings, load time."""
        pool = services().pool
        return {
            "models": visible_models(pool.describe()),
            "allow_any_model": pool.settings.allow_any_model,
            "device": pool.device,
            "device_reason": pool.device_reason,
        }
