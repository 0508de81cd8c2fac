"""Who may call each route: the one registry. Deny by default: every route needs an API key unless
it is listed public here; the routes of an admin blueprint (`ACCESS = ADMIN`, app.api.base) need a
key with the admin scope.

Public: the probes, the playground page (its calls carry the key), and what LLM_METRICS_PUBLIC
(`/metrics`) and LLM_DOCS_PUBLIC (`/openapi.json`, Swagger UI) open. A route is named by its Flask
endpoint, never by a URL prefix, so a new route is keyed until someone lists it here.
"""

from __future__ import annotations

from typing import Any

from app.settings import Settings

PUBLIC, KEYED, ADMIN = "public", "key", "admin"

ALWAYS_PUBLIC = frozenset({"health.Live", "health.Ready", "playground.index", "playground.asset"})
METRICS = frozenset({"prometheus_metrics"})
DOCS = frozenset({"api-docs.openapi_json", "api-docs.openapi_swagger_ui", "swagger_assets"})


def level(app: Any, endpoint: str | None, settings: Settings) -> str:
    """PUBLIC, KEYED or ADMIN for the route of `endpoint` (None, no route: KEYED)."""
    if endpoint is None:
        return KEYED
    if endpoint in ALWAYS_PUBLIC:
        return PUBLIC
    if (settings.metrics_public and endpoint in METRICS) or (settings.docs_public and endpoint in DOCS):
        return PUBLIC
    blueprint = app.blueprints.get(endpoint.rpartition(".")[0])
    return ADMIN if getattr(blueprint, "ACCESS", KEYED) == ADMIN else KEYED


def registry(app: Any, settings: Settings) -> dict[str, str]:
    """Every registered route (`METHODS /rule`) and who may call it."""
    table = {}
    for rule in app.url_map.iter_rules():
        methods = ",".join(sorted(set(rule.methods or ()) - {"HEAD", "OPTIONS"}))
        table[f"{methods} {rule.rule}"] = level(app, rule.endpoint, settings)
    return table
