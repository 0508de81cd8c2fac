"""Batches (OpenAI's Batch API): an input file validated line by line into items, run by the work
loop, finalized into output and error files; cancelled, or expired at the end of the window."""

from __future__ import annotations

import json
import time
import uuid

import sqlalchemy as sa

from app.engine.offload import gevent_active
from app.errors import BadRequestError, ConflictError, NotFoundError
from app.store import files as stored_files
from app.store import paging
from app.store.db import Database
from app.store.tables import batch_items, batches

ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses")
WINDOWS = {"24h": 86400}
MAX_REPORTED_ERRORS = 100
INSERT_ROWS = 1000
# A batch is `validating` (and seen by nobody) while its creating request inserts its items, one short
# transaction a thousand rows, giving the worker's other requests their turn between them. One left so
# by a process that died is removed once this much older.
VALIDATING_SECONDS = 600
EXPIRED = {
    "code": "batch_expired",
    "message": "This request could not be executed before the completion window expired.",
}
TIMES = (
    "in_progress_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
)


_SEEN = batches.c.status != "validating"  # a batch being created is nobody's to see yet


def not_found(batch_id: str) -> NotFoundError:
    return NotFoundError(
        f"No batch with id '{batch_id}' (never created, expired, or created with another key)",
        details={"param": "batch_id"},
    )


def batch_object(row: sa.Row, counts: dict[str, int]) -> dict:
    times = json.loads(row.times)
    return {
        "id": row.id,
        "object": "batch",
        "endpoint": row.endpoint,
        "errors": json.loads(row.errors) if row.errors else None,
        "input_file_id": row.input_file_id,
        "completion_window": row.completion_window,
        "status": row.status,
        "output_file_id": row.output_file_id,
        "error_file_id": row.error_file_id,
        "created_at": int(row.created_at),
        "expires_at": int(row.expires_at),
        **{name: int(times[name]) if times.get(name) else None for name in TIMES},
        "request_counts": {
            "total": row.total,
            "completed": counts.get("done", 0),
            "failed": counts.get("error", 0),
        },
        "metadata": json.loads(row.metadata) if row.metadata else None,
    }


def _check_line(
    number: int, raw: bytes | None, endpoint: str, seen: set[str]
) -> tuple[dict | None, dict | None]:
    """(item, None) for a good line, (None, error) for a bad one."""

    def bad(message: str, param: str | None = None) -> tuple[None, dict]:
        return None, {
            "code": "invalid_request",
            "message": f"line {number}: {message}",
            "param": param,
            "line": number,
        }

    if raw is None:
        return bad(f"longer than {stored_files.MAX_LINE_BYTES} bytes, a request's body limit")
    try:
        item = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        return bad(f"not valid JSON ({error})")
    if not isinstance(item, dict):
        return bad("must be a JSON object with custom_id, method, url and body")
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id or len(custom_id) > 512:
        return bad("custom_id must be a string of 1 to 512 characters", "custom_id")
    if custom_id in seen:
        return bad(f"custom_id '{custom_id}' appears more than once; each must be unique", "custom_id")
    seen.add(custom_id)
    if item.get("method") != "POST":
        return bad("method must be POST", "method")
    if item.get("url") != endpoint:
        return bad(f"url must be the batch's endpoint {endpoint}", "url")
    body = item.get("body")
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return bad("body must be a JSON object naming a model", "body")
    if body.get("stream") or body.get("background"):
        return bad("body: a batch item cannot stream or run in the background", "body")
    return {"custom_id": custom_id, "body": body}, None


def create(
    db: Database,
    owner: str,
    body: dict,
    *,
    retention: float,
    max_items: int,
    traceparent: str | None,
) -> dict:
    """Validate the input file line by line and create the batch: in_progress with its items, or
    failed naming the bad lines (nothing of it runs)."""
    file_row = stored_files.get_row(db, owner, body["input_file_id"])
    if file_row.purpose != "batch":
        raise BadRequestError(
            f"input_file_id: file '{file_row.id}' has purpose '{file_row.purpose}'; "
            "a batch needs purpose 'batch'",
            details={"param": "input_file_id"},
        )
    endpoint = body["endpoint"]
    count, errors, seen = 0, [], set()
    # First pass: check every line, keeping only the custom_ids seen (the file is never whole in memory).
    for number, raw in stored_files.upload_lines(db, file_row.id):
        if number % INSERT_ROWS == 0:
            _take_turns()
        if raw is not None and not raw.strip():
            continue
        _, error = _check_line(number, raw, endpoint, seen)
        if error is not None:
            errors.append(error)
        elif count < max_items:
            count += 1
        else:
            errors.append(
                {
                    "code": "too_many_requests",
                    "message": f"more than {max_items} requests (LLM_MAX_BATCH_ITEMS)",
                    "param": None,
                    "line": number,
                }
            )
            break
    if not count and not errors:
        errors.append(
            {"code": "empty_file", "message": "the input file has no requests", "param": None, "line": None}
        )
    now = time.time()
    batch_id = f"batch_{uuid.uuid4().hex}"
    status = "failed" if errors else "validating"
    times = {"failed_at": now} if errors else {}
    shown = {"object": "list", "data": errors[:MAX_REPORTED_ERRORS]} if errors else None
    row = dict(
        id=batch_id,
        owner=owner,
        endpoint=endpoint,
        input_file_id=file_row.id,
        completion_window=body["completion_window"],
        status=status,
        metadata=json.dumps(body["metadata"]) if body.get("metadata") else None,
        errors=json.dumps(shown) if shown else None,
        output_file_id=None,
        error_file_id=None,
        total=0 if errors else count,
        created_at=now,
        expires_at=now + WINDOWS[body["completion_window"]],
        times=json.dumps(times),
        traceparent=traceparent,
    )
    with db.begin() as connection:
        connection.execute(batches.insert().values(**row))
    if not errors:
        try:
            _insert_items(db, batch_id, file_row.id)
        except BaseException:
            _remove(db, batch_id)  # all of it or nothing: a batch half inserted never runs
            raise
        with db.begin() as connection:
            connection.execute(
                batches.update()
                .where(batches.c.id == batch_id)
                .values(status="in_progress", times=json.dumps({"in_progress_at": time.time()}))
            )
    return get(db, owner, batch_id)


def _take_turns() -> None:
    """Let the worker's other requests run (under gevent): checking and inserting a large batch is
    seconds of work on the event loop's thread."""
    if gevent_active():
        import gevent

        gevent.sleep(0)


def _insert_items(db: Database, batch_id: str, file_id: str) -> None:
    """Second pass: the items, a thousand rows a transaction, taking turns between them (never inside
    one: a transaction that yielded could hold a lock another request of the worker waits for)."""
    chunk: list[dict] = []
    for number, raw in stored_files.upload_lines(db, file_id):
        if raw.strip():
            item = json.loads(raw)
            chunk.append(
                {
                    "batch_id": batch_id,
                    "line": number,
                    "custom_id": item["custom_id"],
                    "body": json.dumps(item["body"]),
                    "status": "pending",
                    "attempts": 0,
                }
            )
        if len(chunk) == INSERT_ROWS:
            with db.begin() as connection:
                connection.execute(batch_items.insert(), chunk)
            chunk = []
            _take_turns()
    if chunk:
        with db.begin() as connection:
            connection.execute(batch_items.insert(), chunk)


def delete_with_items(connection: sa.Connection, batch_ids: list[str]) -> None:
    """Delete batches with their items."""
    connection.execute(batch_items.delete().where(batch_items.c.batch_id.in_(batch_ids)))
    connection.execute(batches.delete().where(batches.c.id.in_(batch_ids)))


def _remove(db: Database, batch_id: str) -> None:
    """A batch that will never run, with its items."""
    with db.begin() as connection:
        delete_with_items(connection, [batch_id])


def remove_abandoned(db: Database, now: float) -> int:
    """Batches left validating by a process that died while inserting their items; how many."""
    with db.begin() as connection:
        stale = list(
            connection.execute(
                sa.select(batches.c.id).where(
                    batches.c.status == "validating", batches.c.created_at < now - VALIDATING_SECONDS
                )
            ).scalars()
        )
        if stale:
            delete_with_items(connection, stale)
    return len(stale)


def counts_of(connection: sa.Connection, batch_id: str) -> dict[str, int]:
    rows = connection.execute(
        sa.select(batch_items.c.status, sa.func.count())
        .where(batch_items.c.batch_id == batch_id)
        .group_by(batch_items.c.status)
    )
    return {row[0]: row[1] for row in rows}


def get(db: Database, owner: str, batch_id: str) -> dict:
    with db.begin() as connection:
        row = connection.execute(
            sa.select(batches).where(batches.c.id == batch_id, batches.c.owner == owner, _SEEN)
        ).first()
        if row is None:
            raise not_found(batch_id)
        return batch_object(row, counts_of(connection, batch_id))


def listing(db: Database, owner: str, after: str | None, limit: int) -> dict:
    query = sa.select(batches).where(batches.c.owner == owner, _SEEN)
    with db.begin() as connection:
        if after:
            cursor = connection.execute(sa.select(batches.c.created_at).where(batches.c.id == after)).scalar()
            if cursor is not None:
                query = query.where(batches.c.created_at < cursor)
        rows = list(connection.execute(query.order_by(batches.c.created_at.desc()).limit(limit + 1)))
        data = [batch_object(row, counts_of(connection, row.id)) for row in rows[:limit]]
    return paging.page(data, len(rows) > limit)


def cancel(db: Database, owner: str, batch_id: str) -> dict:
    with db.begin() as connection:
        row = connection.execute(
            sa.select(batches).where(batches.c.id == batch_id, batches.c.owner == owner, _SEEN)
        ).first()
        if row is None:
            raise not_found(batch_id)
        if row.status != "in_progress":
            raise ConflictError(
                f"Batch '{batch_id}' is {row.status}: only a batch in progress can be cancelled",
                details={"param": "batch_id", "status": row.status},
            )
        times = {**json.loads(row.times), "cancelling_at": time.time()}
        connection.execute(
            batches.update()
            .where(batches.c.id == batch_id)
            .values(status="cancelling", times=json.dumps(times))
        )
    return get(db, owner, batch_id)
