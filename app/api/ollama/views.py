"""Ollama's API under /ollama: the routes its clients and the tools built on it call, in its shapes,
over the same sessions, keys, shares and metrics as every other API."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from flask import Response, jsonify
from flask.views import MethodView

from app import __version__
from app.api import inference
from app.api.base import OllamaBlueprint
from app.api.embeddings import embed_body
from app.api.functions import call_message, invalid, plan
from app.api.ollama import models, writer
from app.api.ollama.names import model_name, tagged
from app.api.ollama.schemas import (
    OllamaChatSchema,
    OllamaEmbedSchema,
    OllamaGenerateSchema,
    OllamaLegacyEmbedSchema,
    OllamaObjectSchema,
    OllamaShowSchema,
)
from app.api.openai.chat import openai_functions
from app.engine import GenerationRequest
from app.errors import ModelNotFoundError

blp = OllamaBlueprint("ollama", __name__, url_prefix="/ollama", description="Ollama API")
# The Ollama API version this shell follows (clients read it as a numeric x.y.z).
OLLAMA_VERSION = "0.6.5"
_STARTED = datetime.now(UTC).isoformat().replace("+00:00", "Z")
NDJSON = "With `stream` true (the default): NDJSON, a line per delta, the last with `done: true`"


# -- models ---------------------------------------------------------------------------------------
def _visible() -> list[dict]:
    return inference.visible_models(inference.services().pool.describe())


def _find(name: str) -> dict:
    wanted = inference.services().settings.canonical(model_name(name))
    for model in _visible():
        if model["id"] == wanted:
            return model
    raise ModelNotFoundError(f"model '{name}' not found", details={"model": name})


def _details(model: dict) -> dict:
    quantization = model.get("quantization") or {}
    return {
        "parent_model": "",
        "format": model.get("format") or "gguf",
        "family": "llama",
        "families": ["llama"],
        "parameter_size": "",
        "quantization_level": quantization.get("in_situ") or quantization.get("weights") or "",
    }


def _listed(model: dict) -> dict:
    files = (model.get("source") or {}).get("files") or []
    return {
        "name": tagged(model["id"]),
        "model": tagged(model["id"]),
        "modified_at": _STARTED,
        "size": 0,
        "digest": hashlib.sha256(f"{model['id']}:{','.join(files)}".encode()).hexdigest(),
        "details": _details(model),
    }


# -- requests -------------------------------------------------------------------------------------
def _native_body(body: dict) -> dict:
    """The shared request builder's body: Ollama's options already carry our names."""
    options = dict(body["options"])
    options.pop("num_ctx", None)
    if (options.get("max_tokens") or 0) < 1:
        options["max_tokens"] = None  # -1 (no limit) and -2 (fill the context): the server's default
    return {**options, "model": model_name(body["model"])}


def _refuse(field: str, reason: str) -> None:
    raise invalid(field, reason)


def _messages(messages: list[dict]) -> tuple[dict[str, str], ...]:
    converted = []
    for message in messages:
        if message.get("images"):
            _refuse("messages", "images are not supported: the models here read text")
        content = message.get("content") or ""
        calls = message.get("tool_calls") or []
        if message["role"] == "assistant" and calls and not content:
            functions = [call.get("function") or {} for call in calls]
            content = call_message([(f.get("name"), f.get("arguments")) for f in functions])
        converted.append({"role": message["role"], "content": content})
    return tuple(converted)


def chat_request(body: dict) -> GenerationRequest:
    tools = plan(openai_functions(body["tools"]), "auto", "tools")
    return inference.build_request(
        _native_body(body),
        grammar=inference.native_grammar({"format": body["format"]}),
        tools=tools.tools,
        messages=_messages(body["messages"]),
    )


def generate_request(body: dict) -> GenerationRequest:
    for field in ("suffix", "template", "context"):
        if body.get(field):
            _refuse(field, "not supported by this server")
    if body.get("images"):
        _refuse("images", "images are not supported: the models here read text")
    native = _native_body(body)
    grammar = inference.native_grammar({"format": body["format"]})
    if body["raw"]:
        return inference.build_request(native, grammar=grammar, prompt=body["prompt"], raw=True)
    messages = ([{"role": "system", "content": body["system"]}] if body.get("system") else []) + [
        {"role": "user", "content": body["prompt"]}
    ]
    return inference.build_request(native, grammar=grammar, messages=tuple(messages))


def _answer(request: GenerationRequest, body: dict, chat: bool) -> Response:
    endpoint = "ollama_chat" if chat else "ollama_generate"
    model = body["model"]
    unload = models.unload_requested(body)  # keep_alive 0: the admin scope, checked before anything
    if body["stream"] and not request.raw:
        encoder = writer.NdjsonEncoder(model, chat)
        response = inference.stream_response([request], encoder, endpoint, body)
    else:
        result = inference.run_completion(request, endpoint, body)
        whole = writer.whole(model, result, chat)
        # a raw prompt is completed in one engine call: one line, then the end
        streamed = body["stream"]
        response = Response(writer.line(whole), mimetype=writer.MIMETYPE) if streamed else jsonify(whole)
    return models.unload_when_closed(response, model_name(model)) if unload else response


# -- views ----------------------------------------------------------------------------------------
@blp.route("/", methods=["GET", "HEAD"])
@blp.response(200, description="The text `Ollama is running`", content_type="text/plain")
@blp.generation_errors()
def running() -> Response:
    """Ollama's liveness answer."""
    return Response("Ollama is running", mimetype="text/plain")


@blp.route("/api/version")
class Version(MethodView):
    @blp.response(200, OllamaObjectSchema)
    @blp.generation_errors()
    def get(self):
        """The Ollama API version followed (and this server's own)."""
        return jsonify({"version": OLLAMA_VERSION, "server": __version__})


@blp.route("/api/tags")
class Tags(MethodView):
    @blp.response(200, OllamaObjectSchema)
    @blp.generation_errors()
    def get(self):
        """The models this server serves, in Ollama's list shape."""
        return jsonify({"models": [_listed(m) for m in _visible() if m.get("state") != "failed"]})


@blp.route("/api/ps")
class Running(MethodView):
    @blp.response(200, OllamaObjectSchema)
    @blp.generation_errors()
    def get(self):
        """The models in memory now."""
        loaded = [m for m in _visible() if m.get("state") == "loaded"]
        models = [{**_listed(m), "expires_at": "9999-12-31T23:59:59Z", "size_vram": 0} for m in loaded]
        return jsonify({"models": models})


@blp.route("/api/show")
class Show(MethodView):
    @blp.arguments(OllamaShowSchema)
    @blp.response(200, OllamaObjectSchema)
    @blp.generation_errors()
    def post(self, body: dict):
        """A model's details, context length, template and capabilities (loads it if needed)."""
        name = body.get("model") or body.get("name")
        if not name:
            _refuse("model", "required")
        described = _find(name)
        with inference.leased(described["id"]) as model:
            context = model.context_length
            template = _template(model)
            kind = model.kind
        capabilities = ["embedding"] if kind == "embedding" else ["completion", "tools"]
        settings = inference.services().settings
        # Modelfile lines; Continue reads num_ctx as the context length to fit its prompts in
        defaults = f"temperature {settings.default_temperature}\ntop_p {settings.default_top_p}"
        parameters = f"num_ctx {context}\n{defaults}"
        return jsonify(
            {
                "modelfile": f"FROM {described['id']}\n",
                "parameters": parameters,
                "template": template,
                "details": _details(described),
                "model_info": {"general.architecture": "llama", "llama.context_length": context},
                "capabilities": capabilities,
                "modified_at": _STARTED,
            }
        )


def _template(model: Any) -> str:
    from app.engine import tokens

    try:
        return tokens.template_text(model)
    except Exception:  # a model without a chat template (or an embedding model) shows none
        return ""


@blp.route("/api/chat")
class Chat(MethodView):
    @blp.arguments(OllamaChatSchema)
    @blp.response(200, OllamaObjectSchema)
    @blp.alt_response(200, description=NDJSON, content_type=writer.MIMETYPE, success=True)
    @blp.generation_errors()
    def post(self, body: dict):
        """The assistant's next message; NDJSON lines unless `stream` is false."""
        return _answer(chat_request(body), body, chat=True)


@blp.route("/api/generate")
class Generate(MethodView):
    @blp.arguments(OllamaGenerateSchema)
    @blp.response(200, OllamaObjectSchema)
    @blp.alt_response(200, description=NDJSON, content_type=writer.MIMETYPE, success=True)
    @blp.generation_errors()
    def post(self, body: dict):
        """A completion of `prompt` (through the chat template unless `raw`); an empty prompt only
        loads the model (or, with `keep_alive` 0, unloads it), as in Ollama."""
        if not body["prompt"]:
            reason = "load"
            if models.unload_requested(body):  # Ollama's way to unload a model now (`ollama stop`)
                models.unload(model_name(body["model"]))
                reason = "unload"
            else:
                with inference.leased(model_name(body["model"])):
                    pass
            return jsonify(
                {
                    "model": body["model"],
                    "created_at": writer.now(),
                    "response": "",
                    "done": True,
                    "done_reason": reason,
                }
            )
        return _answer(generate_request(body), body, chat=False)


@blp.route("/api/embed")
class Embed(MethodView):
    @blp.arguments(OllamaEmbedSchema)
    @blp.response(200, OllamaObjectSchema)
    @blp.generation_errors()
    def post(self, body: dict):
        """Vectors for a string or a list of strings."""
        result = embed_body({**body, "model": model_name(body["model"])}, "ollama_embed")
        return jsonify(
            {
                "model": body["model"],
                "embeddings": result.vectors,
                "total_duration": int(result.timings.total_seconds * 1e9),
                "load_duration": 0,
                "prompt_eval_count": result.usage.prompt_tokens,
            }
        )


@blp.route("/api/embeddings")
class LegacyEmbed(MethodView):
    @blp.arguments(OllamaLegacyEmbedSchema)
    @blp.response(200, OllamaObjectSchema)
    @blp.generation_errors()
    def post(self, body: dict):
        """The older single-prompt form: one vector as `embedding`."""
        result = embed_body(
            {"model": model_name(body["model"]), "input": (body["prompt"],)}, "ollama_embeddings"
        )
        return jsonify({"embedding": result.vectors[0]})
