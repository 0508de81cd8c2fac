"""The web playground: the page a browser gets at `/`, and its assets under `/playground/`.

A plain Flask blueprint (not flask-smorest), so it stays out of the OpenAPI document. The page and
its assets are public (app/api/auth.py): a visitor must be able to load it to type an API key; the
API calls the page makes carry that key. Everything is served from app/playground/ (no CDN): it works
air-gapped.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, send_from_directory

ASSETS = Path(__file__).resolve().parents[2] / "playground"  # app/playground/

blp = Blueprint("playground", __name__)


@blp.get("/")
def index():
    return send_from_directory(ASSETS, "index.html")


@blp.get("/playground/<path:filename>")
def asset(filename: str):
    return send_from_directory(ASSETS, filename)
