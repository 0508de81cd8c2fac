"""How a request field of a published API (OpenAI, Anthropic) that this server does not honour is declared,
once for every API shell: accepted with no effect, or refused by name with why (400).

A field is declared in its request schema like any other, through `no_effect(...)` or `refused(...)`;
`RefusingSchema` (the base of every request schema) refuses a refused field whose value asks for something
(null and the values that ask for nothing pass, and are dropped). `docs/field-matrix.md` is generated from
these declarations and the published specs by `python -m app.api.field_matrix`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from marshmallow import Schema, fields, pre_load

from app.api.functions import unsupported

POLICY = "x-policy"
NO_EFFECT = "accepted, no effect"
REFUSED = "refused by name"

Asks = Callable[[Any], bool]

# Why, worded once for every API that has the field.
SERVICE_TIER = "one service tier."
PROMPT_CACHE = "the prefix cache matches prompts themselves, needs no key and is bounded by memory."
SAFETY = "no abuse monitoring here."
USER = "an end-user id for the caller's own records."
AUDIO = "audio output is not supported: the models make text."
WEB_SEARCH = "server-side web search is not supported: offer a function tool."
NO_REASONING = "the served models do not reason: no reasoning effort, summary or thinking budget."
VERBOSITY = "the answer's verbosity cannot be set: use max_tokens or instructions."


def asks_anything(value: Any) -> bool:
    """Null, false, an empty string, list or object ask for nothing."""
    return value not in (None, False, "", [], {})


def given(value: Any) -> bool:
    """Any value but null asks (an empty options object turns a feature on with its defaults)."""
    return value is not None


def no_effect(field: fields.Field, why: str) -> fields.Field:
    """A published field this server accepts (null too) and does not act on: `why` says so in the docs."""
    field.allow_none = True
    field.metadata = {**field.metadata, POLICY: NO_EFFECT, "description": f"Accepted, no effect: {why}"}
    return field


def refused(why: str, asks: Asks = asks_anything) -> fields.Raw:
    """A published field that asks for what this server cannot do: refused (400, naming it, saying `why`)
    when `asks(value)`; any other value is accepted and dropped."""
    return fields.Raw(
        allow_none=True,
        metadata={POLICY: REFUSED, "why": why, "asks": asks, "description": f"Refused when set: {why}"},
    )


def policy(field: fields.Field) -> str | None:
    return field.metadata.get(POLICY)


class RefusingSchema(Schema):
    """Before any other check: null for an optional field means it was not given (its default applies), and
    a refused field whose value asks for something is refused."""

    @pre_load
    def _refuse(self, data: Any, **kwargs: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for name, field in self.fields.items():
            key = field.data_key or name
            if key not in data or field.required:
                continue
            if policy(field) == REFUSED and field.metadata["asks"](data[key]):
                raise unsupported(key, field.metadata["why"])
            if data[key] is None or policy(field) == REFUSED:
                data = {k: v for k, v in data.items() if k != key}
        return data
