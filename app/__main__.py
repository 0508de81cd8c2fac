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

from app.settings import Settings, SettingsError


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
    from app.engine.faults import EngineFault, NoHubSource

    try:
        repo, revision, files = hub.pull_target(settings, name, revision, files)
        snapshot, _ = hub.download(repo, settings, revision=revision, files=files, progress=True)
    except NoHubSource as refused:
        print(f"error: {_no_hub_source(refused)}", file=sys.stderr)
        return 1
    except EngineFault as error:  # the model is not there, or the download failed: it says which
        print(f"error: {error}", file=sys.stderr)
        return 1
    fetched = [p for p in snapshot.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in fetched)
    print(f"{repo}: {len(fetched)} files, {size / 2**20:.1f} MiB, revision {snapshot.name}")
    print(f"  in {snapshot}")
    return 0


def _no_hub_source(refused) -> str:
    if refused.why == refused.OFFLINE:
        return "HF_HUB_OFFLINE=1: pulling needs the hub; unset it on the connected machine"
    if refused.why == refused.LOCAL:
        return f"'{refused.model}' is a local path in LLM_MODELS_FILE ({refused.where}); nothing to pull"
    return f"'{refused.model}' is not a hub id (ORG/NAME); nothing to pull"


def _models(settings: Settings, as_json: bool) -> int:
    from app.engine.inventory import available_models

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


if __name__ == "__main__":
    sys.exit(main())
