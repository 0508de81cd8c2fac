"""A batch's life after creation, on every replica's work loop: expire what outlived its window,
finalize what has nothing left to run (its output and error files), and retention's cleanup."""

from __future__ import annotations

import json
import uuid

import sqlalchemy as sa

from app.store.batches import EXPIRED, counts_of, delete_with_items, remove_abandoned
from app.store.db import Database
from app.store.tables import batch_items, batches, file_chunks, files, responses


def _unclaimed(now: float) -> sa.ColumnElement:
    """Items nobody runs: pending, or running under a lease that ran out (their replica died)."""
    stale = sa.and_(batch_items.c.status == "running", batch_items.c.lease_until < now)
    return sa.or_(batch_items.c.status == "pending", stale)


def advance(db: Database, now: float, retention: float) -> None:
    """Expire what outlived its window; finalize what has nothing left to run. An item left running by
    a replica that died counts as not running: a stopped batch (cancelled, expired) never hands it out
    again, so it would otherwise hold the batch open for good. A batch left half created by a process
    that died is removed."""
    remove_abandoned(db, now)
    with db.begin() as connection:
        expiring = connection.execute(
            sa.select(batches.c.id).where(batches.c.status == "in_progress", batches.c.expires_at < now)
        ).scalars()
        for batch_id in list(expiring):
            pending = connection.execute(
                sa.select(batch_items.c.line, batch_items.c.custom_id).where(
                    batch_items.c.batch_id == batch_id, _unclaimed(now)
                )
            )
            for line, custom_id in list(pending):
                result = {"id": f"batch_req_{uuid.uuid4().hex}", "custom_id": custom_id, "response": None}
                connection.execute(
                    batch_items.update()
                    .where(batch_items.c.batch_id == batch_id, batch_items.c.line == line)
                    .values(status="error", result=json.dumps({**result, "error": EXPIRED}))
                )
        connection.execute(
            batch_items.update()
            .where(
                batch_items.c.batch_id.in_(sa.select(batches.c.id).where(batches.c.status == "cancelling")),
                batch_items.c.status == "running",
                batch_items.c.lease_until < now,
            )
            .values(status="pending", lease_owner=None, lease_until=None)
        )
        open_batches = list(
            connection.execute(sa.select(batches).where(batches.c.status.in_(("in_progress", "cancelling"))))
        )
    for row in open_batches:
        try:
            with db.begin() as connection:
                counts = counts_of(connection, row.id)
                if counts.get("running") or (row.status == "in_progress" and counts.get("pending")):
                    continue
                _finalize(connection, row, counts, now, retention)
        except _Raced:
            pass  # another replica finalized it first; this transaction's files were rolled back


def _finalize(
    connection: sa.Connection, row: sa.Row, counts: dict[str, int], now: float, retention: float
) -> None:
    times = json.loads(row.times)
    if row.status == "cancelling":
        final, stamp = "cancelled", "cancelled_at"
    elif row.expires_at < now:
        final, stamp = "expired", "expired_at"
    else:
        final, stamp = "completed", "completed_at"
    times.update({"finalizing_at": now, stamp: now})
    ids: dict[str, str | None] = {"output_file_id": None, "error_file_id": None}
    for kind, status in (("output", "done"), ("error", "error")):
        if not counts.get(status):
            continue
        size = connection.execute(
            sa.select(sa.func.sum(sa.func.length(batch_items.c.result) + 1)).where(
                batch_items.c.batch_id == row.id, batch_items.c.status == status
            )
        ).scalar()
        file_id = f"file-{uuid.uuid4().hex}"
        connection.execute(
            files.insert().values(
                id=file_id,
                owner=row.owner,
                purpose="batch_output",
                filename=f"{row.id}_{kind}.jsonl",
                bytes=int(size or 0),
                created_at=now,
                expires_at=now + retention,
                batch_id=row.id,
                kind=kind,
            )
        )
        ids[f"{kind}_file_id"] = file_id
    done = connection.execute(
        batches.update()
        .where(batches.c.id == row.id, batches.c.status == row.status)
        .values(status=final, times=json.dumps(times), **ids)
    ).rowcount
    if not done:
        raise _Raced()


class _Raced(Exception):
    """The batch changed state under this finalize (another replica finalized it)."""


def clean(db: Database, now: float, retention: float) -> dict[str, int]:
    """Retention: drop responses, files and batches (with their items) past their expiry."""
    removed = {}
    with db.begin() as connection:
        removed["responses"] = connection.execute(
            responses.delete().where(responses.c.expires_at < now)
        ).rowcount
        gone = list(connection.execute(sa.select(files.c.id).where(files.c.expires_at < now)).scalars())
        if gone:
            connection.execute(file_chunks.delete().where(file_chunks.c.file_id.in_(gone)))
            connection.execute(files.delete().where(files.c.id.in_(gone)))
        removed["files"] = len(gone)
        old = list(
            connection.execute(
                sa.select(batches.c.id).where(batches.c.expires_at < now - retention)
            ).scalars()
        )
        if old:
            delete_with_items(connection, old)
        removed["batches"] = len(old)
    return {k: v for k, v in removed.items() if v}
