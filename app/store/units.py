"""Work units in the database: claim, renew, give back, release, record. A unit is a background
response (table responses) or a batch item (table batch_items); every write after the claim holds
only while this replica still holds the unit's lease."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from app.store import work_units
from app.store.db import Database
from app.store.tables import batch_items, batches, responses

if TYPE_CHECKING:
    from app.store.work import Unit

QUEUED, IN_PROGRESS, PENDING, RUNNING, DONE, ERROR = (
    "queued",
    "in_progress",
    "pending",
    "running",
    "done",
    "error",
)


def _response_unit(row: sa.Row) -> Unit:
    from app.store.work import Unit

    request = json.loads(row.request)
    items = [*json.loads(row.context), *json.loads(row.input_items)]
    body = {**request, "input": items, "previous_response_id": None, "background": False, "store": False}
    body["stream"] = False
    return Unit("response", row.id, row.owner, "/v1/responses", body, row.attempts)


def claim(
    db: Database, replica: str, now: float, lease: float, limit: int, skip_owners: set[str] = frozenset()
) -> list[Unit]:
    """Background responses first (they are one person's wait), then batch items, the oldest batch's
    first; none of the keys in `skip_owners` (over their share or quota for now)."""
    from app.store.work import Unit

    found: list[Unit] = []
    with db.begin() as connection:
        rows = work_units.claim(
            connection,
            responses,
            sa.and_(
                responses.c.status == QUEUED, responses.c.background, responses.c.owner.not_in(skip_owners)
            ),
            replica=replica,
            now=now,
            lease_seconds=lease,
            limit=limit,
            running=IN_PROGRESS,
        )
        found += [_response_unit(row) for row in rows]
        if len(found) < limit:
            active = sa.select(batches.c.id).where(
                batches.c.status == IN_PROGRESS, batches.c.owner.not_in(skip_owners)
            )
            rows = work_units.claim(
                connection,
                batch_items,
                batch_items.c.status == PENDING,
                replica=replica,
                now=now,
                lease_seconds=lease,
                limit=limit - len(found),
                running=RUNNING,
                scope=batch_items.c.batch_id.in_(active),
                first=sa.select(batches.c.created_at)
                .where(batches.c.id == batch_items.c.batch_id)
                .scalar_subquery(),
            )
            if rows:
                info = {
                    batch.id: batch
                    for batch in connection.execute(
                        sa.select(
                            batches.c.id, batches.c.owner, batches.c.endpoint, batches.c.traceparent
                        ).where(batches.c.id.in_({row.batch_id for row in rows}))
                    )
                }
                for row in rows:
                    batch = info[row.batch_id]
                    found.append(
                        Unit(
                            "item",
                            row.batch_id,
                            batch.owner,
                            batch.endpoint,
                            json.loads(row.body),
                            row.attempts,
                            line=row.line,
                            custom_id=row.custom_id,
                            traceparent=batch.traceparent,
                        )
                    )
    return found


def renew(db: Database, replica: str, until: float) -> None:
    with db.begin() as connection:
        work_units.renew(connection, responses, replica, until, IN_PROGRESS)
        work_units.renew(connection, batch_items, replica, until, RUNNING)


def give_back(db: Database, replica: str) -> int:
    with db.begin() as connection:
        return work_units.reclaim_own(connection, responses, replica, IN_PROGRESS) + work_units.reclaim_own(
            connection, batch_items, replica, RUNNING
        )


def _where(unit: Unit, replica: str) -> tuple[sa.Table, list[sa.ColumnElement]]:
    if unit.kind == "response":
        return responses, [
            responses.c.id == unit.id,
            responses.c.lease_owner == replica,
            responses.c.status == IN_PROGRESS,
        ]
    return batch_items, [
        batch_items.c.batch_id == unit.id,
        batch_items.c.line == unit.line,
        batch_items.c.lease_owner == replica,
        batch_items.c.status == RUNNING,
    ]


def release(db: Database, unit: Unit, replica: str) -> None:
    """The unit did not run (no capacity, a drain, a cancelled batch): ready again, the attempt
    not counted."""
    table, where = _where(unit, replica)
    with db.begin() as connection:
        connection.execute(
            table.update()
            .where(*where)
            .values(
                status=QUEUED if unit.kind == "response" else PENDING,
                lease_owner=None,
                lease_until=None,
                attempts=sa.func.max(table.c.attempts - 1, 0)
                if db.dialect == "sqlite"
                else sa.func.greatest(table.c.attempts - 1, 0),
            )
        )


def _error_of(body: Any) -> tuple[str, str]:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("code") or error.get("type") or "error"), str(error.get("message", ""))
    if isinstance(error, str):
        return "error", error
    return "server_error", "the request failed without a readable error"


def record(
    db: Database,
    unit: Unit,
    replica: str,
    status: int,
    body: Any,
    request_id: str | None,
    error: tuple[str, str] | None = None,
) -> bool:
    """Commit a unit's outcome (only while this replica holds it). True when recorded."""
    table, where = _where(unit, replica)
    with db.begin() as connection:
        if unit.kind == "response":
            row = connection.execute(sa.select(responses).where(responses.c.id == unit.id)).first()
            if row is None:
                return False
            queued = json.loads(row.body or "{}")
            if error is None and 200 <= status < 300 and isinstance(body, dict):
                final = {**body, **{k: queued.get(k) for k in ("id", "created_at", "previous_response_id")}}
                final.update(store=True, background=True)
            else:
                code, message = error or _error_of(body)
                final = {**queued, "status": "failed", "error": {"code": code, "message": message}}
            values = {"status": final["status"], "body": json.dumps(final)}
        else:
            if error is not None:
                line = {"error": {"code": error[0], "message": error[1]}, "response": None}
            else:
                line = {
                    "response": {"status_code": status, "request_id": request_id, "body": body},
                    "error": None,
                }
            line = {"id": f"batch_req_{uuid.uuid4().hex}", "custom_id": unit.custom_id, **line}
            ok = error is None and 200 <= status < 300
            values = {"status": DONE if ok else ERROR, "result": json.dumps(line)}
        done = connection.execute(
            table.update().where(*where).values(**values, lease_until=None)  # lease_owner: who ran it
        ).rowcount
    return bool(done)


def stopped(db: Database, running: list[Unit]) -> set[tuple]:
    """Of the units this replica runs, those whose response was cancelled or whose batch no longer
    runs (cancelled, expired)."""
    response_ids = [u.id for u in running if u.kind == "response"]
    batch_ids = {u.id for u in running if u.kind == "item"}
    with db.begin() as connection:
        live = set(
            connection.execute(
                sa.select(responses.c.id).where(
                    responses.c.id.in_(response_ids), responses.c.status == IN_PROGRESS
                )
            ).scalars()
        )
        active = set(
            connection.execute(
                sa.select(batches.c.id).where(batches.c.id.in_(batch_ids), batches.c.status == IN_PROGRESS)
            ).scalars()
        )
    return {
        u.key
        for u in running
        if (u.kind == "response" and u.id not in live) or (u.kind == "item" and u.id not in active)
    }
