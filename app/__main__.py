"""Command line: prepare models for an air-gapped host.

    python -m app pull MODEL_ID [--revision R] [--file NAME.gguf ...]   download into HF_HOME
    python -m app models [--json]                                       list what is available locally

`pull` fetches through HF_ENDPOINT (a mirror, or the public hub) with a progress bar; copy HF_HOME to
the air-gapped host and serve with HF_HUB_OFFLINE=1. Both read the service's variables
(LLM_MODELS_FILE, LLM_MODEL_PATH, HF_HOME, ...); LLM_ALLOWED_MODELS is optional here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from app.settings import EMBEDDED_MODEL_ID, Settings, SettingsError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    pull = commands.add_parser("pull", help="download a model into HF_HOME through HF_ENDPOINT")
    pull.add_argument("model", help="hub repo id (ORG/NAME), or a catalog id or alias")
    pull.add_argument("--revision", default=None, help="branch, tag or commit (default: main)")
    pull.add_argument("--file", action="append", default=[], help="a GGUF file to fetch (repos with several)")
    listing = commands.add_parser("models", help="list the models available locally")
    listing.add_argument("--json", action="store_true", help="one JSON document instead of a table")
    args = parser.parse_args(argv)
    try:
        # the serving variables (TLS, ...) may name files of the target host: not needed here
        settings = Settings.from_env({"LLM_ALLOWED_MODELS": "*", **os.environ, "SERVER_SSL_ENABLED": "false"})
    except SettingsError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    if args.command == "pull":
        return _pull(settings, args.model, args.revision, tuple(args.file))
    return _models(settings, args.json)


def _pull(settings: Settings, name: str, revision: str | None, files: tuple[str, ...]) -> int:
    from app.engine import hub
    from app.engine.faults import EngineFault

    if settings.hf_hub_offline:
        print(
            "error: HF_HUB_OFFLINE=1: pulling needs the hub; unset it on the connected machine",
            file=sys.stderr,
        )
        return 1
    model_id = settings.canonical(name)
    entry = settings.catalog.get(model_id)
    if entry is not None and entry.path is not None:
        print(
            f"error: '{name}' is a local path in LLM_MODELS_FILE ({entry.path}); nothing to pull",
            file=sys.stderr,
        )
        return 1
    repo = entry.repo if entry is not None and entry.repo else model_id
    revision = revision or (entry.revision if entry is not None else None) or "main"
    files = files or (entry.files if entry is not None else ())
    try:
        snapshot, _ = hub.download(repo, settings, revision=revision, files=files, progress=True)
    except EngineFault as error:  # the model is not there, or the download failed: it says which
        print(f"error: {error}", file=sys.stderr)
        return 1
    fetched = [p for p in snapshot.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in fetched)
    print(f"{repo}: {len(fetched)} files, {size / 2**20:.1f} MiB, revision {snapshot.name}")
    print(f"  in {snapshot}")
    return 0


def _models(settings: Settings, as_json: bool) -> int:
    rows = available_models(settings)
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    header = ("ID", "FORMAT", "ORIGIN", "SIZE", "LOCATION")
    table = [header] + [
        (r["id"], r["format"] or "-", r["origin"], f"{r['size_bytes'] / 2**20:.1f} MiB", r["location"])
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1])
    if not rows:
        print("(no models found locally)")
    return 0


def available_models(settings: Settings) -> list[dict]:
    """Every model this host can serve without a network: catalog, embedded, LLM_MODEL_PATH, cache."""
    from app.engine import catalog
    from app.engine.faults import ModelNotFound

    rows: list[dict] = []
    seen: set[str] = set()

    def add(model_id: str, source: catalog.ModelSource | None) -> None:
        if source is None or model_id in seen:
            return
        seen.add(model_id)
        location = Path(source.location)
        paths = [location / f for f in source.filenames] if source.filenames else location.rglob("*")
        rows.append(
            {
                "id": model_id,
                "format": source.format,
                "origin": source.origin,
                "location": source.location,
                "files": list(source.filenames),
                "revision": source.revision,
                "size_bytes": sum(p.stat().st_size for p in paths if p.is_file()),
            }
        )

    offline = _offline(settings)
    candidates = [*settings.catalog, EMBEDDED_MODEL_ID]
    if settings.model_path is not None and settings.model_path.is_dir():
        directories = [*settings.model_path.glob("*"), *settings.model_path.glob("*/*")]
        candidates += sorted(
            str(p.relative_to(settings.model_path))
            for p in directories
            if p.is_dir() and (any(p.glob("*.gguf")) or (p / "config.json").is_file())
        )
    cache_root = catalog.hf_cache_root(settings)
    candidates += sorted(
        p.name.removeprefix("models--").replace("--", "/") for p in cache_root.glob("models--*")
    )
    for model_id in candidates:
        try:
            source = catalog.resolve(model_id, offline)
        except ModelNotFound:
            continue
        add(model_id, source if source.origin != "hub" else None)
    return rows


def _offline(settings: Settings) -> Settings:
    from dataclasses import replace

    return replace(settings, hf_hub_offline=True)


if __name__ == "__main__":
    sys.exit(main())
