"""The model catalog file (LLM_MODELS_FILE, TOML or YAML): per model id, where it is and engine options.

```toml
[models."google/gemma-3-270m"]
alias = "gemma"
path = "models/gemma-3-270m-q4_k_m.gguf"   # a local GGUF file or model directory
chat_template = "templates/gemma3.jinja"   # a Jinja file, or the template itself
max_context = 4096
```

Each entry names its weights with at most one of `path` (a local file or directory; relative paths are
relative to the catalog file) and `repo` (a hub repo id, looked up like a model id: LLM_MODEL_PATH,
then the cache, then the hub), plus `files` (GGUF file names) and `revision`. An entry with neither is
found by its own id. Validation happens at start: a bad file stops the service with one line naming
the file, the entry and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from app.config_file import load_entry, read

DTYPES = ("auto", "f32", "f16", "bf16")
ISQ_TYPES = (
    "none",
    "Q4_0",
    "Q4_1",
    "Q5_0",
    "Q5_1",
    "Q8_0",
    "Q8_1",
    "Q2K",
    "Q3K",
    "Q4K",
    "Q5K",
    "Q6K",
    "Q8K",
    "HQQ4",
    "HQQ8",
    "FP8",
)


def is_template_text(value: str) -> bool:
    """A chat_template value is the template itself when it has Jinja markup; else it names a file."""
    return "{%" in value or "{{" in value


@dataclass(frozen=True)
class CatalogEntry:
    """One model's catalog entry; `None` means "as without a catalog"."""

    model_id: str
    alias: str | None = None
    path: Path | None = None
    repo: str | None = None
    revision: str | None = None
    files: tuple[str, ...] = ()
    chat_template: str | None = None  # a file path, or the template text itself
    dtype: str | None = None
    in_situ_quant: str | None = None
    max_seqs: int | None = None
    max_context: int | None = None

    @property
    def chat_template_is_file(self) -> bool:
        return self.chat_template is not None and not is_template_text(self.chat_template)


class _EntrySchema(Schema):
    class Meta:
        unknown = RAISE

    alias = fields.String(validate=validate.Length(min=1))
    path = fields.String(validate=validate.Length(min=1))
    repo = fields.String(validate=validate.Regexp(r"^[\w.-]+/[\w.-]+$", error="must be ORG/NAME"))
    revision = fields.String(validate=validate.Length(min=1))
    files = fields.List(fields.String(validate=validate.Regexp(r"^.+\.gguf$", error="must end in .gguf")))
    chat_template = fields.String(validate=validate.Length(min=1))
    dtype = fields.String(validate=validate.OneOf(DTYPES))
    in_situ_quant = fields.String(validate=validate.OneOf(ISQ_TYPES))
    max_seqs = fields.Integer(strict=True, validate=validate.Range(min=1, max=1024))
    max_context = fields.Integer(strict=True, validate=validate.Range(min=16))

    @validates_schema
    def _one_source(self, data: dict, **_: Any) -> None:
        if "path" in data and "repo" in data:
            raise ValidationError("give at most one of path and repo")
        if "revision" in data and "repo" not in data:
            raise ValidationError("revision needs repo")


class CatalogError(ValueError):
    """The catalog cannot be used; the message names the file, the entry and the reason."""


def load(path: Path) -> dict[str, CatalogEntry]:
    """Parse and validate the catalog at `path`: model id -> entry."""
    raw = read(path, CatalogError)
    if not isinstance(raw, dict) or set(raw) != {"models"} or not isinstance(raw["models"], dict):
        raise CatalogError(f"{path}: the file must hold one table 'models' mapping model ids to entries")
    entries: dict[str, CatalogEntry] = {}
    names: dict[str, str] = {}
    for model_id, body in raw["models"].items():
        entry = _entry(path, str(model_id), body)
        for name in (entry.model_id, entry.alias):
            if name is None:
                continue
            if name in names and names[name] != entry.model_id:
                raise CatalogError(
                    f"{path}: entry '{model_id}': the name '{name}' is already used by '{names[name]}'"
                )
            names[name] = entry.model_id
        entries[entry.model_id] = entry
    return entries


def _entry(path: Path, model_id: str, body: Any) -> CatalogEntry:
    where = f"{path}: entry '{model_id}'"
    if not model_id.strip():
        raise CatalogError(f"{path}: an entry has an empty model id")
    data = load_entry(_EntrySchema(), body, where, CatalogError)
    base = path.parent
    local = Path(data["path"]).expanduser() if "path" in data else None
    if local is not None:
        local = local if local.is_absolute() else base / local
        if not local.exists():
            raise CatalogError(f"{where}: path {local} does not exist")
        if local.is_file() and local.suffix != ".gguf":
            raise CatalogError(f"{where}: path {local} is a file but not a .gguf file")
        if local.is_file() and data.get("files"):
            raise CatalogError(f"{where}: files is for a directory or repo; path already names the file")
        if local.is_dir():
            _check_directory(where, local, tuple(data.get("files", ())))
    template = data.get("chat_template")
    entry = CatalogEntry(
        model_id=model_id,
        alias=data.get("alias"),
        path=local,
        repo=data.get("repo"),
        revision=data.get("revision"),
        files=tuple(data.get("files", ())),
        chat_template=template,
        dtype=data.get("dtype"),
        in_situ_quant=data.get("in_situ_quant"),
        max_seqs=data.get("max_seqs"),
        max_context=data.get("max_context"),
    )
    if entry.chat_template_is_file and template is not None:
        file = Path(template).expanduser()
        file = file if file.is_absolute() else base / file
        if not file.is_file():
            raise CatalogError(
                f"{where}: chat_template {file} does not exist (give a file, or the template text)"
            )
        if file.suffix != ".jinja":
            raise CatalogError(f"{where}: chat_template {file} must be a .jinja file")
        entry = replace(entry, chat_template=str(file))
    return entry


def _check_directory(where: str, directory: Path, files: tuple[str, ...]) -> None:
    """A catalog directory must hold what the engine loads: the named files, or a model."""
    missing = [name for name in files if not (directory / name).is_file()]
    if missing:
        raise CatalogError(f"{where}: files {', '.join(missing)} not found in {directory}")
    has_model = any(directory.glob("*.gguf")) or (
        (directory / "config.json").is_file() and any(directory.glob("*.safetensors"))
    )
    if not files and not has_model:
        raise CatalogError(
            f"{where}: path {directory} holds no model (a .gguf file, or config.json and *.safetensors)"
        )
