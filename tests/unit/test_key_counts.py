"""The limiter's per-key counts after every way a request can end: success, 401 before the slot, 429,
503, cancelled while queued, cancelled while running, a deadline, an engine error. After each, no slot
is held, nobody waits and no key counts a request; a request's timings count from its arrival
(queue <= first token <= total <= its life). A request at its key's share waits for a holder whose
client has left, and is refused while the holder's client is there."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from tests.helpers import FakeRunner, fake_chunk

A, B = "team-a-key-0123456789", "team-b-key-0123456789"
KEYS = f"""
[keys.team-a]
key = "{A}"
max_concurrent = 1

[keys.team-b]
key = "{B}"
tokens_per_minute = 100000
"""
CHAT = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}


class HeldRunner(FakeRunner):
    """Streams its first token, then holds the stream until `go` is set (a running generation)."""

    def __init__(self) -> None:
        super().__init__()
        self.go = threading.Event()
        self.holding = threading.Event()

    def _stream(self) -> Iterator:
        try:
            yield fake_chunk("Hel")
            self.holding.set()
            self.go.wait(30)
            yield fake_chunk("lo", "length", completion=2)
        finally:
            self.closed += 1


@pytest.fixture
def held(make_app, tmp_path):
    (tmp_path / "keys.toml").write_text(KEYS)
    runner = HeldRunner()
    app = make_app(
        runner,
        LLM_API_KEYS_FILE=str(tmp_path / "keys.toml"),
        LLM_MAX_CONCURRENT_REQUESTS="1",
        LLM_MAX_QUEUED_REQUESTS="1",
        LLM_QUEUE_TIMEOUT_SECONDS="30",
    )
    runner.go.set()  # each test holds the stream where it needs to
    return app, runner


def post(app, key: str | None, body: dict = CHAT, results: list | None = None):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    started = time.monotonic()
    response = app.test_client().post("/api/chat", json=body, headers=headers)
    life = time.monotonic() - started
    if response.status_code == 200:  # every timing counts from arrival: the queue is part of the life
        timings = response.get_json()["timings"]
        assert timings["queue_seconds"] <= timings["time_to_first_token_seconds"]
        assert timings["time_to_first_token_seconds"] <= timings["total_seconds"] <= life
    if results is not None:
        results.append(response.status_code)
    return response


def assert_nothing_counted(app) -> None:
    limiter = app.extensions["llm"].limiter
    assert limiter.in_use == 0 and limiter.waiting == 0 and not any(limiter.running.values())
    assert not app.extensions["llm"].sessions


def in_background(app, key: str | None, body: dict = CHAT) -> tuple[threading.Thread, list]:
    results: list = []
    thread = threading.Thread(target=post, args=(app, key, body, results))
    thread.start()
    return thread, results


def hold_the_slot(app, runner, key: str = A) -> tuple[threading.Thread, list]:
    runner.go.clear()
    runner.holding.clear()
    thread, results = in_background(app, key)
    assert runner.holding.wait(30)
    return thread, results


def wait_until(condition) -> None:
    end = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < end, "never happened"
        time.sleep(0.001)  # polling a condition, not synchronisation


def session_waiting(app):
    sessions = app.extensions["llm"].sessions
    wait_until(lambda: app.extensions["llm"].limiter.waiting == 1)
    return next(s for s in sessions if s._slot_at is None)


def test_success_and_a_refused_key_count_nothing(held):
    app, _ = held
    assert post(app, A).status_code == 200 and post(app, B).status_code == 200
    assert post(app, None).status_code == 401 and post(app, "not-a-key-0123456789").status_code == 401
    assert_nothing_counted(app)


def test_a_key_over_its_share_gets_429_and_the_holder_still_counts(held):
    app, runner = held
    for _ in range(3):
        thread, results = hold_the_slot(app, runner)
        holder = next(iter(app.extensions["llm"].sessions))
        refused = post(app, A)  # while A's stream holds its one share
        assert refused.status_code == 429
        assert refused.get_json()["error"]["details"]["held_by"] == [holder.request_id] != ["-"]
        assert app.extensions["llm"].limiter.running["team-a"] == 1
        runner.go.set()
        thread.join(30)
        assert results == [200]
        assert_nothing_counted(app)


def test_a_full_queue_is_503(held):
    app, runner = held
    thread, _ = hold_the_slot(app, runner, B)
    waiter, queued = in_background(app, B)
    session_waiting(app)
    assert post(app, B).status_code == 503  # one slot held, one waiting: the queue is full
    runner.go.set()
    thread.join(30)
    waiter.join(30)
    assert queued == [200]
    assert_nothing_counted(app)


def test_cancelled_while_queued_and_while_running(held):
    app, runner = held
    thread, running = hold_the_slot(app, runner, B)
    waiter, queued = in_background(app, A)
    session_waiting(app).interrupt("cancelled")
    waiter.join(30)
    assert queued == [499]
    running_session = next(iter(app.extensions["llm"].sessions))
    running_session.interrupt("cancelled")
    runner.go.set()
    thread.join(30)
    assert running == [499]
    assert_nothing_counted(app)
    assert post(app, A).status_code == 200  # A's share is whole again


def test_a_deadline_while_queued_and_an_engine_error(held):
    app, runner = held
    thread, _ = hold_the_slot(app, runner, B)
    assert post(app, A, {**CHAT, "timeout": 0.2}).status_code == 504
    runner.go.set()
    thread.join(30)
    assert_nothing_counted(app)
    runner.error, runner.error_at = ValueError("candle: broken"), "submit"
    assert post(app, A).status_code == 500
    assert_nothing_counted(app)
    runner.error = None
    assert post(app, A).status_code == 200


class _Watched(threading.Event):
    """A session's `freed` that tells when another request starts waiting on it."""

    def __init__(self, waited: threading.Event) -> None:
        super().__init__()
        self._waited = waited

    def wait(self, timeout: float | None = None) -> bool:
        self._waited.set()
        return super().wait(timeout)


def test_a_request_at_its_share_waits_for_a_holder_whose_client_left_instead_of_429(held):
    """The holder's client has left (its session is cut) but its engine call has not returned yet:
    the key's next request waits for the slot to come back rather than being refused for it."""
    app, runner = held
    thread, holder_results = hold_the_slot(app, runner)
    holder = next(iter(app.extensions["llm"].sessions))
    waited = threading.Event()
    holder.freed = _Watched(waited)
    holder.interrupt("cancelled")  # the client left; the engine still holds the stream
    follower, results = in_background(app, A)
    assert waited.wait(30)  # the follower waits on the holder, not refused
    runner.go.set()
    thread.join(30)
    follower.join(30)
    assert holder_results == [499] and results == [200]
    assert_nothing_counted(app)


def test_a_request_at_its_share_is_refused_while_its_holders_client_is_there(held):
    app, runner = held
    thread, _ = hold_the_slot(app, runner)
    holder = next(iter(app.extensions["llm"].sessions))
    waited = threading.Event()
    holder.freed = _Watched(waited)
    assert post(app, A).status_code == 429
    assert not waited.is_set()
    runner.go.set()
    thread.join(30)
    assert_nothing_counted(app)
