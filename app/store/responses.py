"""Stored responses: the rows behind GET/DELETE /v1/responses/{id}, input_items, previous_response_id
and background responses."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import sqlalchemy as sa

from app.errors import NotFoundError
from app.store.db import Database
from app.store.tables import responses

QUEUED, IN_PROGRESS, CANCELLED, FAILED = "queued", "in_progress", "cancelled", "failed"
FINISHED = ("completed", "incomplete", FAILED, CANCELLED)


@dataclass
class Stored:
    id: str
    owner: str
    status: str
    background: bool
    request: dict
    input_items: list[dict]
    context: list[dict]
    body: dict | None
    attempts: int

    @classmethod
    def of(cls, row: sa.Row) -> Stored:
        return cls(
            row.id,
            row.owner,
            row.status,
            row.background,
            json.loads(row.request),
            json.loads(row.input_items),
            json.loads(row.context),
            json.loads(row.body) if row.body else None,
            row.attempts,
        )

    def conversation(self) -> list[dict]:
        """Everything a follow-up continues from: the earlier turns, this input, this output."""
        return [*self.context, *self.input_items, *((self.body or {}).get("output") or [])]


def not_found(response_id: str) -> NotFoundError:
    return NotFoundError(
        f"No response with id '{response_id}' (never stored, deleted, expired, or made with another key)",
        details={"param": "response_id"},
    )


def insert(
    db: Database,
    *,
    owner: str,
    body: dict,
    request: dict,
    input_items: list[dict],
    context: list[dict],
    retention: float,
) -> None:
    now = time.time()
    with db.begin() as connection:
        connection.execute(
            responses.insert().values(
                id=body["id"],
                owner=owner,
                status=body["status"],
                background=bool(body.get("background")),
                request=json.dumps(request),
                input_items=json.dumps(input_items),
                context=json.dumps(context),
                body=json.dumps(body),
                created_at=now,
                expires_at=now + retention,
                attempts=0,
            )
        )


def get(db: Database, owner: str, response_id: str) -> Stored:
    with db.begin() as connection:
        row = connection.execute(
            sa.select(responses).where(responses.c.id == response_id, responses.c.owner == owner)
        ).first()
    if row is None:
        raise not_found(response_id)
    return Stored.of(row)


def delete(db: Database, owner: str, response_id: str) -> None:
    with db.begin() as connection:
        gone = connection.execute(
            responses.delete().where(responses.c.id == response_id, responses.c.owner == owner)
        ).rowcount
    if not gone:
        raise not_found(response_id)


def cancel(db: Database, owner: str, response_id: str) -> Stored:
    """Mark a queued or running background response cancelled; the answer is the stored state."""
    with db.begin() as connection:
        row = connection.execute(
            sa.select(responses).where(responses.c.id == response_id, responses.c.owner == owner)
        ).first()
        if row is None:
            raise not_found(response_id)
        stored = Stored.of(row)
        if stored.status in (QUEUED, IN_PROGRESS):
            stored.status = CANCELLED
            stored.body = {**(stored.body or {}), "status": CANCELLED}
            connection.execute(
                responses.update()
                .where(responses.c.id == response_id, responses.c.status.in_((QUEUED, IN_PROGRESS)))
                .values(status=CANCELLED, body=json.dumps(stored.body), lease_owner=None, lease_until=None)
            )
    return stored
