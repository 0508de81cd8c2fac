"""POST /api/chat and /api/chat/stream: the assistant's next message in a conversation."""

from __future__ import annotations

from flask.views import MethodView

from app.api import inference
from app.api.base import Blueprint
from app.api.schemas import ChatRequestSchema, ChatResponseSchema, StreamEventSchema
from app.api.stream_doc import STREAM_DESCRIPTION

blp = Blueprint("chat", __name__, url_prefix="/api", description="Chat completion")


def _request(body: dict):
    return inference.build_request(
        body, grammar=inference.native_grammar(body), messages=tuple(body["messages"])
    )


@blp.route("/chat")
class Chat(MethodView):
    @blp.arguments(ChatRequestSchema)
    @blp.response(200, ChatResponseSchema)
    @blp.generation_errors()
    def post(self, body: dict):
        """The assistant's reply to `messages`, through the model's chat template."""
        result = inference.run_completion(_request(body), "chat", body)
        message = {"role": "assistant", "content": result.text}
        return {"message": message, **inference.completion_fields(result)}


@blp.route("/chat/stream")
class ChatStream(MethodView):
    @blp.arguments(ChatRequestSchema)
    @blp.response(200, StreamEventSchema, description=STREAM_DESCRIPTION, content_type="text/event-stream")
    @blp.generation_errors()
    def post(self, body: dict):
        """The assistant's reply, streamed as Server-Sent Events."""

        def final(stream, text):
            return {
                "message": {"role": "assistant", "content": text},
                **inference.stream_summary(stream),
            }

        return inference.stream_response(
            [_request(body)], inference.NativeEncoder(final), "chat_stream", body
        )
