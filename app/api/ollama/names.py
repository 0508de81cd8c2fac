"""Model names in Ollama's form, `name:tag`: the tools expect a tag on every listed name (Open WebUI adds
`:latest` to a name without one and looks that up in `/api/tags`), and this server's ids have none."""

from __future__ import annotations

DEFAULT_TAG = "latest"


def model_name(name: str) -> str:
    """The model id for a name a client sent: Ollama's default tag `:latest` is dropped."""
    return name.removesuffix(f":{DEFAULT_TAG}")


def tagged(model_id: str) -> str:
    """The name `/api/tags` and `/api/ps` list for a model id: with `:latest` unless it has a tag."""
    return model_id if ":" in model_id else f"{model_id}:{DEFAULT_TAG}"
