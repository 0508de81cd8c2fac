"""Creating a batch takes turns with the worker's other requests: its items go in a thousand rows a
transaction while the batch is `validating`, which nobody sees; a creation that fails leaves nothing,
and one left half done by a process that died is removed."""

from __future__ import annotations

import time

import gevent
import pytest
import sqlalchemy as sa

from app.errors import NotFoundError, StorageError
from app.store import batches, lifecycle
from app.store.tables import batch_items
from app.store.tables import batches as batch_rows
from tests.unit.test_store import batch, line, upload

LINES = 5 * batches.INSERT_ROWS


@pytest.fixture
def store(make_app):
    app = make_app()
    client = app.test_client()
    data = "\n".join(line(f"id-{n}") for n in range(LINES)).encode()
    return app.extensions["llm"].store.db, client, upload(client, data).get_json()["id"]


def rows(db) -> tuple[int, int]:
    with db.begin() as connection:
        return (
            connection.execute(sa.select(sa.func.count()).select_from(batch_rows)).scalar(),
            connection.execute(sa.select(sa.func.count()).select_from(batch_items)).scalar(),
        )


def test_creating_a_large_batch_takes_turns_with_other_requests(store, monkeypatch):
    _, client, file_id = store
    monkeypatch.setattr(batches, "gevent_active", lambda: True)  # as in the gevent worker
    turns: list[int] = []

    def another_request() -> None:
        while True:
            turns.append(1)
            gevent.sleep(0)

    other = gevent.spawn(another_request)
    gevent.sleep(0)
    before = len(turns)
    created = batch(client, file_id).get_json()
    during = len(turns) - before
    other.kill()
    assert created["status"] == "in_progress" and created["request_counts"]["total"] == LINES
    # a turn every thousand lines checked, and after every thousand rows inserted
    assert during >= 2 * LINES // batches.INSERT_ROWS


def test_a_batch_being_created_is_seen_by_nobody(store, monkeypatch):
    _, client, file_id = store
    real = batches._insert_items
    looked: dict = {}

    def insert_then_look(db, batch_id, file_id):
        real(db, batch_id, file_id)
        with pytest.raises(NotFoundError):
            batches.get(db, "", batch_id)
        with pytest.raises(NotFoundError):
            batches.cancel(db, "", batch_id)
        looked["listed"] = batches.listing(db, "", None, 10)["data"]

    monkeypatch.setattr(batches, "_insert_items", insert_then_look)
    created = batch(client, file_id).get_json()
    assert created["status"] == "in_progress" and looked["listed"] == []
    assert client.get(f"/v1/batches/{created['id']}").get_json()["status"] == "in_progress"


def test_a_creation_that_fails_midway_leaves_nothing(store, monkeypatch):
    db, client, file_id = store
    real = batches._insert_items

    def insert_then_fail(db, batch_id, file_id):
        real(db, batch_id, file_id)
        raise StorageError("the store is full")

    monkeypatch.setattr(batches, "_insert_items", insert_then_fail)
    assert batch(client, file_id).status_code == 503
    assert rows(db) == (0, 0)


def test_a_batch_left_half_created_by_a_dead_process_is_removed(store, monkeypatch):
    db, client, file_id = store
    real = batches._insert_items

    def insert_then_die(db, batch_id, file_id):
        real(db, batch_id, file_id)
        raise SystemExit  # stands for kill -9: nothing after it runs

    monkeypatch.setattr(batches, "_insert_items", insert_then_die)
    monkeypatch.setattr(batches, "_remove", lambda db, batch_id: None)  # the dead process removes nothing
    with pytest.raises(SystemExit):
        batch(client, file_id)
    monkeypatch.undo()
    assert rows(db) == (1, LINES)
    now = time.time()
    lifecycle.advance(db, now, retention=86400)
    assert rows(db) == (1, LINES)  # perhaps still being created: left alone
    lifecycle.advance(db, now + batches.VALIDATING_SECONDS + 1, retention=86400)
    assert rows(db) == (0, 0)
