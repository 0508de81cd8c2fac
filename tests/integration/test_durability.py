"""Nothing lost, nothing done twice: a batch cut by kill -9 of the worker, kill -9 of the whole
server, or SIGTERM, resumes on the same data, and every custom_id is in the output exactly once; a
background response cut by a crash runs again."""

from __future__ import annotations

import io
import json
import os
import signal

import openai
import pytest

from tests.helpers import EMBEDDED, Server, wait_for, worker_pid

ITEMS = 24
FINISHED = ("completed", "failed", "expired", "cancelled")


def start(tmp) -> Server:
    """A server on the data under `tmp`; the same replica id each life, so it takes its units back
    at once (another id would wait for their leases to run out)."""
    return Server(
        tmp, LLM_REPLICA_ID="durable-1", LLM_MAX_CONCURRENT_REQUESTS="3", LLM_WORK_LEASE_SECONDS="2"
    ).start()


_clients: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_clients():
    yield
    while _clients:
        _clients.pop().close()


def client(server) -> openai.OpenAI:
    server.wait_until("/health/ready")
    _clients.append(openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=3))
    return _clients[-1]


def create_batch(api: openai.OpenAI) -> str:
    lines = [
        {
            "custom_id": f"d-{n}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": EMBEDDED,
                "messages": [{"role": "user", "content": f"Write about the number {n}."}],
                "max_tokens": 24,
            },
        }
        for n in range(ITEMS)
    ]
    data = io.BytesIO("\n".join(map(json.dumps, lines)).encode())
    upload = api.files.create(file=("d.jsonl", data), purpose="batch")
    return api.batches.create(
        input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
    ).id


def some_done(api: openai.OpenAI, batch_id: str) -> int:
    return wait_for(
        lambda: api.batches.retrieve(batch_id).request_counts.completed >= 3,
        "a few items done",
        interval=0.05,
    )


def assert_each_once(api: openai.OpenAI, batch_id: str) -> None:
    batch = wait_for(
        lambda: (b := api.batches.retrieve(batch_id)).status in FINISHED and b,
        "the batch to finish",
        300,
        0.2,
    )
    assert batch.status == "completed", batch
    assert batch.request_counts.completed == ITEMS and batch.request_counts.failed == 0
    lines = [json.loads(line) for line in api.files.content(batch.output_file_id).text.splitlines()]
    ids = [line["custom_id"] for line in lines]
    assert sorted(ids) == sorted(f"d-{n}" for n in range(ITEMS)), "every custom_id exactly once"
    assert all(line["response"]["status_code"] == 200 for line in lines)


def test_kill_9_of_the_worker_mid_batch_loses_nothing(tmp_path):
    server = start(tmp_path)
    try:
        api = client(server)
        batch_id = create_batch(api)
        some_done(api, batch_id)
        old = worker_pid(server)
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: worker_pid(server) != old, "gunicorn to start a new worker")
        assert_each_once(client(server), batch_id)
    finally:
        server.stop()


def test_kill_9_of_the_whole_server_then_a_restart_loses_nothing(tmp_path):
    server = start(tmp_path)
    api = client(server)
    batch_id = create_batch(api)
    background = api.responses.create(
        model=EMBEDDED, input="Write a long story.", background=True, max_output_tokens=400
    )
    some_done(api, batch_id)
    wait_for(lambda: api.responses.retrieve(background.id).status == "in_progress", "the response to run")
    worker = worker_pid(server)
    os.kill(server.process.pid, signal.SIGKILL)
    os.kill(worker, signal.SIGKILL)
    server.process.wait()
    server.stop()
    again = start(tmp_path)
    try:
        api = client(again)
        assert_each_once(api, batch_id)
        assert "this replica was running when it stopped run again" in again.log_path.read_text()
        # cut by the crash, it ran again from the start: nothing of it had been acknowledged
        done = wait_for(
            lambda: (
                (r := api.responses.retrieve(background.id)).status not in ("queued", "in_progress") and r
            ),
            "the background response to run again",
        )
        assert done.status in ("completed", "incomplete") and done.output_text
    finally:
        again.stop()


def test_sigterm_mid_batch_then_a_restart_loses_nothing(tmp_path):
    server = start(tmp_path)
    api = client(server)
    batch_id = create_batch(api)
    some_done(api, batch_id)
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=60) == 0
    server.stop()
    again = start(tmp_path)
    try:
        assert_each_once(client(again), batch_id)
    finally:
        again.stop()


@pytest.mark.parametrize("variable", ["LLM_DATA_DIR", "LLM_DATABASE_URL"])
def test_a_store_that_cannot_be_used_stops_the_start_naming_it(tmp_path, variable):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    value = str(blocked / "data") if variable == "LLM_DATA_DIR" else "postgresql://u:secret@127.0.0.1:1/none"
    server = Server(tmp_path, **{variable: value}).start()
    assert server.process.wait(timeout=60) == 2
    server.stop()
    log = server.log()
    assert f"configuration error: {variable}=" in log and "cannot be used" in log
    assert "secret" not in log  # the password never reaches a log line


def test_a_replica_killed_for_good_mid_batch_leaves_its_items_to_the_other(tmp_path):
    """Two replicas on one host share the SQLite store; one dies with kill -9 and never comes back: once
    its leases run out the other runs its items, and every custom_id is in the output once."""
    import sqlite3

    def on(replica: str, status: str) -> int:
        with sqlite3.connect(tmp_path / "data" / "llm.db") as connection:
            query = "SELECT count(*) FROM batch_items WHERE lease_owner = ? AND status = ?"
            return connection.execute(query, (replica, status)).fetchone()[0]

    settings = {"LLM_MAX_CONCURRENT_REQUESTS": "3", "LLM_WORK_LEASE_SECONDS": "2"}
    first = Server(tmp_path, LLM_REPLICA_ID="replica-a", **settings).start()
    second = Server(tmp_path, LLM_REPLICA_ID="replica-b", **settings).start()
    try:
        api = client(first)
        client(second)
        batch_id = create_batch(api)
        wait_for(
            lambda: on("replica-b", "done") >= 1 and on("replica-b", "running") >= 1, "replica-b at work"
        )
        worker = worker_pid(second)
        os.kill(second.process.pid, signal.SIGKILL)
        os.kill(worker, signal.SIGKILL)
        second.process.wait()
        assert_each_once(api, batch_id)
        assert on("replica-b", "running") == 0 and on("replica-b", "done") >= 1
    finally:
        second.stop()
        first.stop()
