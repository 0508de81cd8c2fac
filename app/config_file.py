"""Reading the service's configuration files (TOML or YAML) and naming their first problem in one line."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml
from marshmallow import Schema, ValidationError


def read(path: Path, error: type[ValueError]) -> Any:
    """The parsed file; raise `error` with one line naming the file and the reason."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as failure:
        raise error(f"{path}: cannot be read ({failure.strerror or failure})") from None
    try:
        if path.suffix.lower() == ".toml":
            return tomllib.loads(text)
        if path.suffix.lower() in (".yaml", ".yml"):
            return yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as failure:
        reason = " ".join(str(failure).split())
        raise error(f"{path}: not valid {path.suffix[1:].upper()}: {reason}") from None
    raise error(f"{path}: unknown format; the file name must end in .toml, .yaml or .yml")


def first_message(messages: Any, prefix: str = "") -> str:
    """The first marshmallow message as 'field: reason'."""
    if isinstance(messages, dict):
        key, value = next(iter(messages.items()))
        name = "" if key == "_schema" else f"{prefix}{key}"
        return first_message(value, f"{name}." if name and isinstance(value, dict) else name)
    if isinstance(messages, list):
        reason = str(messages[0]).rstrip(".")
        reason = "unknown option" if reason == "Unknown field" else reason
        return f"{prefix}: {reason}" if prefix else reason
    return str(messages)


def load_entry(schema: Schema, body: Any, where: str, error: type[ValueError]) -> dict:
    """One entry of a file (a table of options) validated by `schema`; `error` names `where`."""
    if not isinstance(body, dict):
        raise error(f"{where}: must be a table of options")
    try:
        return schema.load(body)
    except ValidationError as failure:
        raise error(f"{where}: {first_message(failure.messages)}") from None
