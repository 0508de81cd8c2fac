"""Files (OpenAI's Files API): an upload is kept in chunks of CHUNK bytes, written and read one chunk
at a time, never whole in memory; a batch's output and error files are made of its items' lines."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import IO

import sqlalchemy as sa

from app.errors import NotFoundError, PayloadTooLargeError
from app.store import paging
from app.store.db import Database
from app.store.tables import batch_items, file_chunks, files

CHUNK = 1024 * 1024
PAGE = 500  # batch items read per query when a batch's file is streamed
KIND_STATUS = {"output": "done", "error": "error"}


def file_object(row: sa.Row) -> dict:
    return {
        "id": row.id,
        "object": "file",
        "bytes": row.bytes,
        "created_at": int(row.created_at),
        "expires_at": int(row.expires_at),
        "filename": row.filename,
        "purpose": row.purpose,
        "status": "processed",
        "status_details": None,
    }


def not_found(file_id: str) -> NotFoundError:
    return NotFoundError(
        f"No file with id '{file_id}' (never uploaded, deleted, expired, or uploaded with another key)",
        details={"param": "file_id"},
    )


def upload(
    db: Database, owner: str, purpose: str, filename: str, stream: IO[bytes], retention: float, max_bytes: int
) -> dict:
    """Store an upload read from `stream` (a spooled temporary file: reading it never waits on the
    client), in one transaction: all of it or nothing."""
    file_id = f"file-{uuid.uuid4().hex}"
    now = time.time()
    size = 0
    with db.begin() as connection:
        for seq, data in enumerate(iter(lambda: stream.read(CHUNK), b"")):
            size += len(data)
            if size > max_bytes:
                raise PayloadTooLargeError(
                    f"file: larger than {max_bytes // 2**20} MiB (LLM_MAX_FILE_MB)",
                    details={"param": "file", "max_bytes": max_bytes},
                )
            connection.execute(file_chunks.insert().values(file_id=file_id, seq=seq, data=data))
        row = dict(
            id=file_id,
            owner=owner,
            purpose=purpose,
            filename=filename,
            bytes=size,
            created_at=now,
            expires_at=now + retention,
            batch_id=None,
            kind="upload",
        )
        connection.execute(files.insert().values(**row))
    return file_object(_Row(row))


class _Row(dict):
    """A row not read back from the database, with a row's attribute access."""

    __getattr__ = dict.__getitem__


def get_row(db: Database, owner: str, file_id: str) -> sa.Row:
    with db.begin() as connection:
        row = connection.execute(
            sa.select(files).where(files.c.id == file_id, files.c.owner == owner)
        ).first()
    if row is None:
        raise not_found(file_id)
    return row


def listing(db: Database, owner: str, purpose: str | None, limit: int, after: str | None, order: str) -> dict:
    query = sa.select(files).where(files.c.owner == owner)
    if purpose:
        query = query.where(files.c.purpose == purpose)
    with db.begin() as connection:
        if after:
            cursor = connection.execute(sa.select(files.c.created_at).where(files.c.id == after)).scalar()
            if cursor is not None:
                newer = files.c.created_at > cursor if order == "asc" else files.c.created_at < cursor
                query = query.where(newer)
        column = files.c.created_at.asc() if order == "asc" else files.c.created_at.desc()
        rows = list(connection.execute(query.order_by(column, files.c.id).limit(limit + 1)))
    data = [file_object(row) for row in rows[:limit]]
    return paging.page(data, len(rows) > limit)


def delete(db: Database, owner: str, file_id: str) -> None:
    with db.begin() as connection:
        gone = connection.execute(
            files.delete().where(files.c.id == file_id, files.c.owner == owner)
        ).rowcount
        if not gone:
            raise not_found(file_id)
        connection.execute(file_chunks.delete().where(file_chunks.c.file_id == file_id))


def content(db: Database, row: sa.Row) -> Iterator[bytes]:
    """A file's bytes, a chunk (or a page of a batch's lines) per query."""
    if row.kind == "upload":
        seq = 0
        while True:
            with db.begin() as connection:
                data = connection.execute(
                    sa.select(file_chunks.c.data).where(
                        file_chunks.c.file_id == row.id, file_chunks.c.seq == seq
                    )
                ).scalar()
            if data is None:
                return
            yield bytes(data)
            seq += 1
    else:
        for line in batch_lines(db, row.batch_id, KIND_STATUS[row.kind]):
            yield line.encode() + b"\n"


def batch_lines(db: Database, batch_id: str, status: str) -> Iterator[str]:
    last = -1
    while True:
        with db.begin() as connection:
            rows = list(
                connection.execute(
                    sa.select(batch_items.c.line, batch_items.c.result)
                    .where(batch_items.c.batch_id == batch_id, batch_items.c.status == status)
                    .where(batch_items.c.line > last)
                    .order_by(batch_items.c.line)
                    .limit(PAGE)
                )
            )
        if not rows:
            return
        for row in rows:
            yield row.result
        last = rows[-1].line


# A batch line is one request: it may be as long as a request's body (the app's MAX_CONTENT_LENGTH).
MAX_LINE_BYTES = 8 * 1024 * 1024


def upload_lines(db: Database, file_id: str) -> Iterator[tuple[int, bytes | None]]:
    """An upload's lines, numbered from 1, read a chunk at a time. A line over MAX_LINE_BYTES (one
    request's body limit) comes as None and is skipped, never held whole."""
    number, rest, seq, skipping = 0, b"", 0, False
    while True:
        with db.begin() as connection:
            data = connection.execute(
                sa.select(file_chunks.c.data).where(
                    file_chunks.c.file_id == file_id, file_chunks.c.seq == seq
                )
            ).scalar()
        if data is None:
            break
        seq += 1
        *lines, rest = (rest + bytes(data)).split(b"\n")
        for line in lines:
            number += 1
            yield number, None if skipping else line
            skipping = False
        if len(rest) > MAX_LINE_BYTES or (skipping and not lines):
            skipping, rest = True, b""
    if skipping:
        yield number + 1, None
    elif rest:
        yield number + 1, rest
