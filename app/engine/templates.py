"""A loaded model's chat template, rendered here to count and show a conversation's prompt tokens
without generating (the engine's Python API renders templates only inside a generation).

The template is the one the engine uses: the catalog's, else the GGUF header's
`tokenizer.chat_template`, else the model folder's `chat_template.jinja` or `tokenizer_config.json`.
It is rendered as Hugging Face renders chat templates (sandboxed Jinja, trimmed blocks, loop controls,
`raise_exception`, `tojson`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import TemplateError
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

from app.catalog_file import is_template_text
from app.engine.faults import NoChatTemplate, TemplateRefused
from app.engine.gguf_meta import read_metadata

_GGUF_KEYS = {"tokenizer.chat_template", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"}


def _raise(message: str) -> None:
    raise TemplateError(message)


@lru_cache(maxsize=1)
def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = lambda value, indent=None: json.dumps(value, ensure_ascii=False, indent=indent)
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env


def _token_text(value: Any) -> str:
    """tokenizer_config.json names special tokens as text or as {"content": text}."""
    if isinstance(value, dict):
        return str(value.get("content") or "")
    return value if isinstance(value, str) else ""


def _folder_template(folder: Path) -> tuple[str | None, str, str]:
    jinja = folder / "chat_template.jinja"
    config_file = folder / "tokenizer_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
    template = jinja.read_text(encoding="utf-8") if jinja.is_file() else config.get("chat_template")
    if isinstance(template, list):  # named templates: the default one
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default") or next(iter(named.values()), None)
    return template, _token_text(config.get("bos_token")), _token_text(config.get("eos_token"))


class ChatTemplate:
    """One model's template and special tokens."""

    def __init__(self, text: str, bos_token: str = "", eos_token: str = "") -> None:
        self.text = text
        self.template = _environment().from_string(text)
        self.bos_token, self.eos_token = bos_token, eos_token

    def render(self, messages: list[dict], tools: list[dict] | None = None) -> str:
        try:
            return self.template.render(
                messages=messages,
                tools=tools or None,
                add_generation_prompt=True,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
            )
        except TemplateError as error:
            raise TemplateRefused(str(error)) from None


def chat_template(model: Any, token_text: Callable[[int], str]) -> ChatTemplate:
    """The template of a loaded model (cached on it); 400 chat_template_missing when it has none.
    `token_text` gives a token id's text (a GGUF names its special tokens by id)."""
    cached = getattr(model, "chat_template", None)
    if cached is not None:
        return cached
    text, bos, eos = None, "", ""
    location = Path(model.source.location)
    if model.source.format == "gguf":
        meta = read_metadata(location / model.source.filenames[0], _GGUF_KEYS)
        text = meta.get("tokenizer.chat_template")
        ids = [meta.get(f"tokenizer.ggml.{name}_token_id") for name in ("bos", "eos")]
        bos, eos = (token_text(i) if i is not None else "" for i in ids)
    elif location.is_dir():
        text, bos, eos = _folder_template(location)
    configured = model.config.chat_template
    if configured:
        is_text = is_template_text(configured)
        text = configured if is_text else Path(configured).read_text(encoding="utf-8")
    if not text:
        raise NoChatTemplate(model.model_id, generating=False)
    model.chat_template = ChatTemplate(text, bos, eos)
    return model.chat_template
