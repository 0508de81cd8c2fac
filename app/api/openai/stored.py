"""What `store`, `background` and `previous_response_id` make of a Responses request: the stored
conversation it continues, and where its answer is kept."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from flask import g

from app.api import inference
from app.api.functions import invalid
from app.errors import BadRequestError
from app.store import responses as rows
from app.store.responses import FINISHED


def owner() -> str:
    """Whose objects a request sees: its API key's name ("" on an open server)."""
    key = g.get("api_key")
    return key.name if key is not None else ""


def store() -> Any:
    return inference.services().store


def input_items(body: dict) -> list[dict]:
    """The request's input as stored items, each with an id (what input_items lists)."""
    items = body["input"]
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    stored = []
    for item in items:
        item = dict(item)
        item.setdefault("type", "message")
        if item["type"] == "message":
            if isinstance(item.get("content"), str):
                kind = "output_text" if item.get("role") == "assistant" else "input_text"
                item["content"] = [{"type": kind, "text": item["content"]}]
            item.setdefault("status", "completed")
        prefix = {"message": "msg", "function_call": "fc", "function_call_output": "fco"}.get(
            item["type"], "item"
        )
        item.setdefault("id", f"{prefix}_{uuid.uuid4().hex}")
        stored.append(item)
    return stored


@dataclass
class Plan:
    store: bool
    background: bool
    previous_id: str | None = None
    context: list[dict] = field(default_factory=list)

    def fields(self) -> dict:
        return {"store": self.store, "background": self.background, "previous_response_id": self.previous_id}

    def save(self, response: dict, body: dict) -> None:
        rows.insert(
            store().db,
            owner=owner(),
            body=response,
            request=body,
            input_items=input_items(body),
            context=self.context,
            retention=store().settings.retention_seconds,
        )

    def queue(self, response: dict, body: dict) -> dict:
        """Store a background response as queued and tell the work loop; the answer is the object."""
        self.save(response, body)
        store().work.wake()
        return response


def plan(body: dict) -> Plan:
    """Check `store`, `background` and `previous_response_id` against the settings and the store."""
    allowed = store().settings.store_responses
    wanted = body.get("store")
    if wanted and not allowed:
        raise invalid(
            "store", "this server stores no responses (LLM_STORE_RESPONSES=false); send store: false"
        )
    keep = allowed if wanted is None else wanted
    background = bool(body.get("background"))
    if background and not keep:
        raise invalid("background", "a background response must be stored (store: true)")
    if background and body.get("stream"):
        raise invalid("stream", "a background response cannot stream; poll GET /v1/responses/{id}")
    previous = body.get("previous_response_id")
    context: list[dict] = []
    if previous:
        if not allowed:
            raise invalid(
                "previous_response_id", "this server stores no responses (LLM_STORE_RESPONSES=false)"
            )
        earlier = rows.get(store().db, owner(), previous)
        if earlier.status not in FINISHED or earlier.status in (rows.FAILED, rows.CANCELLED):
            raise BadRequestError(
                f"previous_response_id: response '{previous}' is {earlier.status}; only a completed or "
                "incomplete response can be continued",
                details={"param": "previous_response_id"},
            )
        context = earlier.conversation()
    return Plan(keep, background, previous, context)
