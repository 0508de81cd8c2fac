"""POST /api/generate and /api/generate/stream: text from a prompt."""

from __future__ import annotations

from flask.views import MethodView

from app.api import inference
from app.api.base import Blueprint
from app.api.schemas import GenerateRequestSchema, GenerateResponseSchema, StreamEventSchema
from app.api.stream_doc import STREAM_DESCRIPTION

blp = Blueprint("generate", __name__, url_prefix="/api", description="Text generation")


def _request(body: dict):
    return inference.build_request(
        body, grammar=inference.native_grammar(body), prompt=body["prompt"], raw=body["raw"]
    )


@blp.route("/generate")
class Generate(MethodView):
    @blp.arguments(GenerateRequestSchema)
    @blp.response(200, GenerateResponseSchema)
    @blp.generation_errors()
    def post(self, body: dict):
        """Generate text from a prompt.

        By default the prompt is one user turn through the model's chat template (as Ollama's
        `/api/generate`); `raw: true` sends it verbatim.
        """
        result = inference.run_completion(_request(body), "generate", body)
        return {"text": result.text, **inference.completion_fields(result)}


@blp.route("/generate/stream")
class GenerateStream(MethodView):
    @blp.arguments(GenerateRequestSchema)
    @blp.response(200, StreamEventSchema, description=STREAM_DESCRIPTION, content_type="text/event-stream")
    @blp.generation_errors()
    def post(self, body: dict):
        """Generate text from a prompt, streamed as Server-Sent Events."""
        encoder = inference.NativeEncoder(
            lambda stream, text: {"text": text, **inference.stream_summary(stream)}
        )
        return inference.stream_response([_request(body)], encoder, "generate_stream", body)
