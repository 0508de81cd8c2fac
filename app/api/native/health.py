"""Liveness and readiness probes."""

from __future__ import annotations

from flask.views import MethodView

from app.api.base import Blueprint
from app.api.inference import services
from app.api.native.model_schemas import HealthSchema

blp = Blueprint("health", __name__, url_prefix="/health", description="Probes")


@blp.route("/live")
class Live(MethodView):
    @blp.doc(security=[])  # probes never need a key
    @blp.response(200, HealthSchema)
    def get(self):
        """200 while the process serves requests."""
        return {"status": "ok"}


@blp.route("/ready")
class Ready(MethodView):
    @blp.doc(security=[])
    @blp.response(200, HealthSchema)
    @blp.alt_response(503, schema=HealthSchema, description="Loading, draining, or a model failed to load")
    def get(self):
        """200 when every model of LLM_ALLOWED_MODELS is loaded; 503 with the reason otherwise."""
        llm = services()
        if llm.drain.draining:
            return {"status": "draining", "reason": "the server is shutting down"}, 503
        ready, detail = llm.pool.readiness()
        return {"status": "ready" if ready else "not_ready", **detail}, 200 if ready else 503
