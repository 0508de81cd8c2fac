"""API keys and what each may do: LLM_API_KEYS (comma-separated keys) or LLM_API_KEYS_FILE (TOML or
YAML), validated at start like the catalog.

```toml
[keys.team-a]
key = "sha256:3f2a..."          # the key itself, or sha256: and the hex digest of it
models = ["HuggingFaceTB/SmolLM2-135M-Instruct"]
max_concurrent = 2
tokens_per_minute = 20000
tokens_per_day = 1000000
max_tokens_limit = 1024
priority = 1                    # its waiting requests go before those of lower priority (default 0)
admin = true                    # may manage models (/api/admin, Ollama's pull and delete); default false
```

Only digests are kept: a key is compared by its SHA-256 digest, in constant time. A key's name, never
the key, is what logs, metrics and traces carry.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marshmallow import RAISE, Schema, fields, validate

from app.config_file import load_entry, read

_DIGEST = re.compile(r"^sha256:([0-9a-fA-F]{64})$")
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MIN_KEY_LENGTH = 16
NAME_DIGITS = 12  # hex digits of a listed key's digest in its name


class KeysError(ValueError):
    """The keys cannot be used; the message names the file, the entry and the reason."""


@dataclass(frozen=True)
class ApiKey:
    """One key: its name, its digest, and its policy (None: no limit of that kind)."""

    name: str
    digest: bytes
    models: tuple[str, ...] | None = None
    max_concurrent: int | None = None
    tokens_per_minute: int | None = None
    tokens_per_day: int | None = None
    max_tokens_limit: int | None = None
    priority: int = 0
    admin: bool = False  # the admin scope: model management (pull, load, unload, delete)


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def find(keys: dict[str, ApiKey], presented: str) -> ApiKey | None:
    """The key whose digest matches; every key is compared, each in constant time."""
    wanted = digest(presented)
    found = None
    for key in keys.values():
        if hmac.compare_digest(key.digest, wanted):
            found = key
    return found


class _KeySchema(Schema):
    class Meta:
        unknown = RAISE

    key = fields.String(required=True, validate=validate.Length(min=1))
    models = fields.List(fields.String(validate=validate.Length(min=1)), validate=validate.Length(min=1))
    max_concurrent = fields.Integer(strict=True, validate=validate.Range(min=1, max=1024))
    tokens_per_minute = fields.Integer(strict=True, validate=validate.Range(min=1))
    tokens_per_day = fields.Integer(strict=True, validate=validate.Range(min=1))
    max_tokens_limit = fields.Integer(strict=True, validate=validate.Range(min=1))
    priority = fields.Integer(strict=True, validate=validate.Range(min=-100, max=100))
    admin = fields.Boolean(truthy={True}, falsy={False})


def _key_digest(where: str, value: str) -> bytes:
    match = _DIGEST.match(value)
    if match:
        return bytes.fromhex(match.group(1))
    if value.startswith("sha256:"):
        raise KeysError(f"{where}: key: sha256: must be followed by 64 hex digits")
    if len(value) < MIN_KEY_LENGTH:
        raise KeysError(f"{where}: key: must be at least {MIN_KEY_LENGTH} characters")
    return digest(value)


def load(path: Path) -> dict[str, ApiKey]:
    """Parse and validate the keys file at `path`: name -> key."""
    raw = read(path, KeysError)
    table = raw.get("keys") if isinstance(raw, dict) and set(raw) == {"keys"} else None
    if not isinstance(table, dict) or not table:
        raise KeysError(f"{path}: the file must hold one table 'keys' mapping key names to entries")
    keys: dict[str, ApiKey] = {}
    for name, body in table.items():
        keys[str(name)] = _entry(path, str(name), body)
    unique(path, keys)
    return keys


def _entry(path: Path, name: str, body: Any) -> ApiKey:
    where = f"{path}: entry '{name}'"
    if not _NAME.match(name):
        raise KeysError(f"{where}: the name must be 1 to 64 letters, digits, '.', '_' or '-'")
    data = load_entry(_KeySchema(), body, where, KeysError)
    models = data.get("models")
    return ApiKey(
        name=name,
        digest=_key_digest(where, data["key"]),
        models=tuple(models) if models else None,
        max_concurrent=data.get("max_concurrent"),
        tokens_per_minute=data.get("tokens_per_minute"),
        tokens_per_day=data.get("tokens_per_day"),
        max_tokens_limit=data.get("max_tokens_limit"),
        priority=data.get("priority", 0),
        admin=data.get("admin", False),
    )


def unique(source: Path | str, keys: dict[str, ApiKey]) -> None:
    """Refuse two entries with the same key (named by `source`)."""
    seen: dict[bytes, str] = {}
    for key in keys.values():
        if key.digest in seen:
            raise KeysError(f"{source}: entry '{key.name}': the same key as '{seen[key.digest]}'")
        seen[key.digest] = key.name


def from_list(
    raw: str, variable: str = "LLM_API_KEYS", prefix: str = "key", admin: bool = False
) -> dict[str, ApiKey]:
    """LLM_API_KEYS: comma-separated keys without a policy, each named by the start of its digest
    (key-3f2a9c01d4e5), so that its name, and what it owns in the store, stays its own whatever the
    order of the list; LLM_ADMIN_API_KEYS likewise (admin-..., with the admin scope). The name shows
    12 hex digits of the SHA-256 digest, never the key."""
    values = [value.strip() for value in raw.split(",") if value.strip()]
    if not values:
        raise KeysError(f"{variable}: no key given")
    keys: dict[str, ApiKey] = {}
    for number, value in enumerate(values, 1):
        digest = _key_digest(f"{variable}: key {number}", value)
        name = f"{prefix}-{digest.hex()[:NAME_DIGITS]}"
        if name in keys:
            raise KeysError(f"{variable}: key {number} is the same key as an earlier one")
        keys[name] = ApiKey(name, digest, admin=admin)
    unique(variable, keys)
    return keys
