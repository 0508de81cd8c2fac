"""The HTTP API: flask-smorest blueprints over the engine layer (never mistralrs directly)."""

from __future__ import annotations

from flask import Flask, send_from_directory

from app.api import embeddings
from app.api.admin import views as admin
from app.api.anthropic import views as anthropic
from app.api.base import Api
from app.api.native import chat, generate, health, llms, playground, tokens
from app.api.ollama import models as ollama_models
from app.api.ollama import views as ollama
from app.api.openai import batches, files, responses, responses_stored
from app.api.openai import chat as openai
from app.settings import Settings

SWAGGER_ASSETS = "/swagger-ui/assets/"


SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer KEY"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}


def init_app(app: Flask, settings: Settings) -> Api:
    """Register every blueprint and serve Swagger UI from local files (works air-gapped). With API
    keys, the document declares them on every operation but the probes (Swagger UI's Authorize)."""
    from swagger_ui_bundle import swagger_ui_path

    app.config.update(
        API_TITLE="LLM Inference API",
        API_VERSION="1.0.0",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/swagger-ui",
        OPENAPI_SWAGGER_UI_URL=SWAGGER_ASSETS,
    )
    spec_kwargs: dict = {"info": {"description": "On-premise LLM inference on mistral.rs."}}
    if settings.api_keys:
        spec_kwargs["security"] = [{name: []} for name in SECURITY_SCHEMES]
    api = Api(app, spec_kwargs=spec_kwargs)
    if settings.api_keys:
        for name, scheme in SECURITY_SCHEMES.items():
            api.spec.components.security_scheme(name, scheme)
    modules = (
        health,
        llms,
        generate,
        chat,
        openai,
        responses,
        responses_stored,
        files,
        batches,
        anthropic,
        tokens,
    )
    for module in modules:
        api.register_blueprint(module.blp)
    api.register_blueprint(embeddings.blp)
    api.register_blueprint(embeddings.v1)
    api.register_blueprint(ollama.blp)
    api.register_blueprint(ollama_models.blp)
    api.register_blueprint(admin.blp)

    @app.get(SWAGGER_ASSETS + "<path:filename>")
    def swagger_assets(filename: str):
        return send_from_directory(str(swagger_ui_path), filename)

    app.before_request(files.before_upload)
    app.register_blueprint(playground.blp)  # the web page at /: plain Flask, outside the OpenAPI document
    return api
