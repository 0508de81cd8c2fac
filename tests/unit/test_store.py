"""The store behind the Files and Batch APIs, on SQLite, through the Flask test client (fake engine;
the work loop is not running, so batch items stay pending)."""

from __future__ import annotations

import json
import time

import pytest
import sqlalchemy as sa

from app.store import lifecycle, units
from app.store.tables import batch_items
from tests.unit.conftest import FAKE_MODEL

ENDPOINT = "/v1/chat/completions"


def form(data: bytes, purpose: str = "batch") -> bytes:
    """A multipart body built here: the test client would spool a large one to a file it never closes."""
    head = (
        f'--b0\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n{purpose}\r\n'
        '--b0\r\nContent-Disposition: form-data; name="file"; filename="in.jsonl"\r\n\r\n'
    )
    return head.encode() + data + b"\r\n--b0--\r\n"


def upload(client, data: bytes, purpose: str = "batch", headers: dict | None = None):
    kind = "multipart/form-data; boundary=b0"
    return client.post("/v1/files", data=form(data, purpose), content_type=kind, headers=headers)


def line(custom_id: str, **overrides) -> str:
    body = {"model": "m", "messages": [{"role": "user", "content": "Hi"}]}
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": body, **overrides})


def batch(client, file_id: str):
    return client.post(
        "/v1/batches", json={"input_file_id": file_id, "endpoint": ENDPOINT, "completion_window": "24h"}
    )


def batch_of(client, lines: list[str]) -> dict:
    """A batch of `lines`, uploaded as its input file: the created batch object."""
    return batch(client, upload(client, "\n".join(lines).encode()).get_json()["id"]).get_json()


def test_a_file_of_several_chunks_comes_back_byte_for_byte(client):
    data = bytes(range(256)) * (10 * 1024 + 7)  # 2.5 MiB: three chunks
    stored = upload(client, data).get_json()
    assert stored["bytes"] == len(data)
    content = client.get(f"/v1/files/{stored['id']}/content")
    assert content.status_code == 200 and content.data == data


def test_a_batch_is_checked_line_by_line_and_holds_each_good_line_once(make_app):
    app = make_app()
    client = app.test_client()
    good = "\n".join(line(f"id-{n}") for n in range(2500)) + "\n\n"
    created = batch(client, upload(client, good.encode()).get_json()["id"]).get_json()
    assert created["status"] == "in_progress" and created["request_counts"]["total"] == 2500
    db = app.extensions["llm"].store.db
    with db.begin() as connection:
        ids = connection.execute(
            sa.select(batch_items.c.custom_id).where(batch_items.c.batch_id == created["id"])
        )
        assert sorted(ids.scalars()) == sorted(f"id-{n}" for n in range(2500))
    bad = "\n".join([line("a"), line("a"), line("b", url="/v1/embeddings"), "[1]", line("c", body=[])])
    failed = batch(client, upload(client, bad.encode()).get_json()["id"]).get_json()
    assert failed["status"] == "failed" and failed["request_counts"]["total"] == 0
    assert [e["line"] for e in failed["errors"]["data"]] == [2, 3, 4, 5]


def test_claims_never_hand_one_item_to_two_replicas(make_app):
    app = make_app()
    client = app.test_client()
    good = "\n".join(line(f"id-{n}") for n in range(10))
    batch(client, upload(client, good.encode()).get_json()["id"])
    db = app.extensions["llm"].store.db
    first = units.claim(db, "replica-a", 1000.0, 30, 6)
    second = units.claim(db, "replica-b", 1001.0, 30, 6)
    assert len(first) == 6 and len(second) == 4
    assert not {u.custom_id for u in first} & {u.custom_id for u in second}
    assert units.claim(db, "replica-c", 1002.0, 30, 6) == []  # all leased
    taken = units.claim(db, "replica-c", 2000.0, 30, 20)  # the leases ran out: free to claim again
    assert len(taken) == 10 and all(u.attempts == 2 for u in taken)
    assert not units.record(db, first[0], "replica-a", 200, {"ok": 1}, "r")  # its lease is lost
    assert units.record(db, taken[0], "replica-c", 200, {"ok": 1}, "r")


def test_another_keys_objects_are_not_found(make_app):
    client = make_app(LLM_API_KEYS="key-a-0123456789abcdef,key-b-0123456789abcdef").test_client()
    a = {"Authorization": "Bearer key-a-0123456789abcdef"}
    b = {"Authorization": "Bearer key-b-0123456789abcdef"}
    file_id = upload(client, line("x").encode(), headers=a).get_json()["id"]
    for path in (f"/v1/files/{file_id}", f"/v1/files/{file_id}/content"):
        assert client.get(path, headers=b).status_code == 404
        assert client.get(path, headers=a).status_code == 200
    answer = client.get(f"/v1/files/{file_id}", headers=b).get_json()
    assert answer["error"]["code"] == "not_found" and "in.jsonl" not in json.dumps(answer)
    assert client.get("/v1/files", headers=b).get_json()["data"] == []


def test_a_cancelled_batch_whose_running_item_lost_its_replica_is_finalized(make_app):
    """kill -9 while an item of a cancelling batch runs: after the restart nobody may claim the item (the
    batch no longer runs), so it must not hold the batch in `cancelling` for good."""
    app = make_app()
    client = app.test_client()
    batch_id = batch_of(client, [line(f"id-{n}") for n in range(3)])["id"]
    db = app.extensions["llm"].store.db
    running = units.claim(db, "replica-a", time.time(), 30, 1)
    assert units.record(db, running[0], "replica-a", 200, {"ok": 1}, "r")
    units.claim(db, "replica-a", time.time(), 30, 1)  # the second item runs when the worker dies
    assert client.post(f"/v1/batches/{batch_id}/cancel").get_json()["status"] == "cancelling"
    lifecycle.advance(db, time.time(), 3600)
    assert client.get(f"/v1/batches/{batch_id}").get_json()["status"] == "cancelling"  # its lease holds
    assert units.give_back(db, "replica-a") == 1  # the restart
    lifecycle.advance(db, time.time(), 3600)
    final = client.get(f"/v1/batches/{batch_id}").get_json()
    assert final["status"] == "cancelled" and final["request_counts"]["completed"] == 1
    assert units.claim(db, "replica-b", time.time(), 30, 10) == []


def test_items_of_an_expired_batch_left_running_by_a_dead_replica_expire(make_app):
    app = make_app()
    client = app.test_client()
    batch_id = batch_of(client, [line(f"id-{n}") for n in range(2)])["id"]
    db = app.extensions["llm"].store.db
    units.claim(db, "replica-a", time.time(), 30, 1)
    units.give_back(db, "replica-a")
    later = time.time() + 2 * 86400  # past the 24h window
    lifecycle.advance(db, later, 3600)
    final = client.get(f"/v1/batches/{batch_id}").get_json()
    assert final["status"] == "expired" and final["request_counts"]["failed"] == 2
    assert units.claim(db, "replica-b", later, 30, 10) == []


def test_batches_are_claimed_oldest_first_and_a_waiting_key_does_not_hold_up_the_others(make_app):
    keys = {"a": "key-a-0123456789abcdef", "b": "key-b-0123456789abcdef"}
    client = make_app(LLM_API_KEYS=",".join(keys.values())).test_client()
    ids = {}
    for name in ("a", "b"):  # a's batch first, then b's: a random id must not decide the order
        auth = {"Authorization": f"Bearer {keys[name]}"}
        file_id = upload(client, "\n".join(line(f"{name}-{n}") for n in range(5)).encode(), headers=auth)
        created = client.post(
            "/v1/batches",
            json={
                "input_file_id": file_id.get_json()["id"],
                "endpoint": ENDPOINT,
                "completion_window": "24h",
            },
            headers=auth,
        )
        ids[name] = created.get_json()["id"]
    db = client.application.extensions["llm"].store.db
    first = units.claim(db, "replica-a", time.time(), 30, 3)
    assert [u.id for u in first] == [ids["a"]] * 3
    owner_a = first[0].owner
    others = units.claim(db, "replica-a", time.time(), 30, 3, skip_owners={owner_a})
    assert [u.id for u in others] == [ids["b"]] * 3  # a is over its share: b's items run meanwhile


def test_work_of_a_key_no_longer_configured_fails_instead_of_running_as_nobody(make_app):
    key_a, key_b = "key-a-0123456789abcdef", "key-b-0123456789abcdef"
    before = make_app(LLM_API_KEYS=f"{key_a},{key_b}").test_client()
    auth = {"Authorization": f"Bearer {key_b}"}
    file_id = upload(before, line("x").encode(), headers=auth).get_json()["id"]
    before.post(
        "/v1/batches",
        json={"input_file_id": file_id, "endpoint": ENDPOINT, "completion_window": "24h"},
        headers=auth,
    )
    after = make_app(LLM_API_KEYS=key_a)  # the same data directory; key b was removed
    llm = after.extensions["llm"]
    (unit,) = units.claim(llm.store.db, "replica-a", time.time(), 30, 1)
    llm.store.work.app = after  # the loop itself is not started in unit tests
    status, body, _ = llm.store.work._call(unit)
    assert status == 401 and "no longer configured" in body["error"]["message"], (unit, body)


def test_a_cancelled_batchs_unrun_items_are_not_counted_as_pending_work(make_app):
    from app.observability.store_metrics import StoreCollector

    app = make_app()
    client = app.test_client()
    batch_id = batch_of(client, [line(f"id-{n}") for n in range(3)])["id"]
    llm = app.extensions["llm"]

    def pending() -> float:
        (units_metric,) = [
            m for m in StoreCollector(llm.store, llm.limiter).collect() if m.name == "llm_work_units"
        ]
        return sum(s.value for s in units_metric.samples if s.labels.get("state") == "pending")

    assert pending() == 3
    client.post(f"/v1/batches/{batch_id}/cancel")
    assert pending() == 0


def test_a_streamed_response_the_store_cannot_keep_ends_with_an_error_and_response_failed(
    make_app, monkeypatch
):
    from app.errors import StorageError
    from app.store import responses as stored_rows

    def full(*args, **kwargs):
        raise StorageError("the store could not write: disk full")

    monkeypatch.setattr(stored_rows, "insert", full)
    client = make_app().test_client()
    answer = client.post("/v1/responses", json={"model": FAKE_MODEL, "input": "Hi", "stream": True})
    events = [
        line.removeprefix("event: ")
        for line in answer.get_data(as_text=True).splitlines()
        if line.startswith("event: ")
    ]
    assert events[-2:] == ["error", "response.failed"], events
    assert "response.completed" not in events


def test_retention_removes_responses_files_and_batches_past_their_time_and_nothing_sooner(make_app):
    app = make_app(LLM_RETENTION_DAYS="30")
    client = app.test_client()
    response_id = client.post("/v1/responses", json={"model": FAKE_MODEL, "input": "Hi"}).get_json()["id"]
    file_id = upload(client, line("x").encode()).get_json()["id"]
    batch_id = batch(client, file_id).get_json()["id"]
    paths = (f"/v1/responses/{response_id}", f"/v1/files/{file_id}", f"/v1/batches/{batch_id}")
    db = app.extensions["llm"].store.db
    month = 30 * 86400
    assert lifecycle.clean(db, time.time() + month - 3600, month) == {}
    assert [client.get(path).status_code for path in paths] == [200, 200, 200]
    removed = lifecycle.clean(db, time.time() + 2 * month + 86400, month)
    assert removed == {"responses": 1, "files": 1, "batches": 1}
    assert [client.get(path).status_code for path in paths] == [404, 404, 404]


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_a_line_over_a_requests_body_limit_fails_the_batch_naming_it_without_holding_it(
    make_app, monkeypatch, where
):
    from app.store import files as stored_files

    monkeypatch.setattr(stored_files, "CHUNK", 64)  # the long line spans many chunks
    monkeypatch.setattr(stored_files, "MAX_LINE_BYTES", 200)
    client = make_app().test_client()
    lines = [line("a"), line("b"), line("c")]
    index = {"first": 0, "middle": 1, "last": 2}[where]
    lines[index] = line(lines[index][:0] + "long", padding="x" * 1000)
    created = batch_of(client, lines)
    assert created["status"] == "failed"
    (error,) = created["errors"]["data"]
    assert error["line"] == index + 1 and "longer than 200 bytes" in error["message"]


class _Busy:
    """A limiter whose interactive requests never leave a quiet moment."""

    def interactive_quiet(self, seconds: float) -> bool:
        return False


class _Session:
    def __init__(self) -> None:
        self.interrupted: list[str] = []

    def interrupt(self, reason: str) -> None:
        self.interrupted.append(reason)


def test_background_work_makes_progress_under_steady_interactive_traffic(make_app, monkeypatch):
    from app.store import work as work_module

    started: list = []
    monkeypatch.setattr(work_module, "spawn_background", started.append)
    app = make_app()
    client = app.test_client()
    batch_of(client, [line(f"id-{n}") for n in range(3)])
    loop = app.extensions["llm"].store.work
    loop.app, loop.limiter = app, _Busy()
    loop._tick()
    assert started == []  # never quiet: nothing starts while work has not waited long
    loop._progress_at -= work_module.STARVED_SECONDS + 1  # nothing finished for a minute while work waits
    loop._tick()
    (unit,) = loop.running.values()
    assert len(started) == 1 and unit.steady
    unit.session = _Session()
    loop.preempt()  # an interactive request: the starved unit runs on
    assert unit.session.interrupted == [] and not unit.preempted
    loop._tick()
    assert len(started) == 1  # one starved unit at a time


def test_a_unit_preempted_too_often_runs_to_its_end_next_time(make_app, monkeypatch):
    from app.store import work as work_module

    monkeypatch.setattr(work_module, "spawn_background", lambda run: None)
    app = make_app()
    client = app.test_client()
    batch_of(client, [line("only")])
    loop = app.extensions["llm"].store.work
    loop.app = app
    loop.limiter = type("Quiet", (), {"interactive_quiet": lambda self, seconds: True})()
    for _ in range(work_module.MAX_PREEMPTIONS):
        loop._tick()
        (unit,) = loop.running.values()
        assert not unit.steady
        unit.session = _Session()
        loop.preempt()
        assert unit.preempted
        monkeypatch.setattr(loop, "_call", lambda unit: (499, None, None))
        loop._run(unit)  # ends preempted: released, to run again
    loop._tick()
    (unit,) = loop.running.values()
    assert unit.steady


def test_a_batch_from_a_file_of_another_purpose_is_400_naming_it(make_app):
    app = make_app()
    client = app.test_client()
    batch_id = batch_of(client, [line("x")])["id"]
    db = app.extensions["llm"].store.db
    (unit,) = units.claim(db, "replica-a", time.time(), 30, 1)
    assert units.record(db, unit, "replica-a", 200, {"ok": 1}, "r")
    lifecycle.advance(db, time.time(), 3600)
    output = client.get(f"/v1/batches/{batch_id}").get_json()["output_file_id"]
    answer = batch(client, output)
    assert answer.status_code == 400 and "purpose 'batch_output'" in answer.get_json()["error"]["message"]
