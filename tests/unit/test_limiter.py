"""The slot limiter: arrival order, the bounded queue, the wait, and the estimate behind Retry-After."""

from __future__ import annotations

import threading

import pytest

from app.engine.limiter import SlotLimiter
from app.errors import OverloadedError


def test_a_free_slot_is_taken_at_once_and_returned():
    limiter = SlotLimiter(limit=2, timeout=1)
    assert limiter.acquire(1, threading.Event()) and limiter.acquire(1, threading.Event())
    assert limiter.in_use == 2
    limiter.release(held_seconds=0.5)
    assert limiter.in_use == 1 and limiter.mean_hold_seconds == 0.5


def test_a_freed_slot_goes_to_the_oldest_waiter():
    limiter = SlotLimiter(limit=1, timeout=30)
    assert limiter.acquire(1, threading.Event())
    order: list[str] = []

    def wait(name: str) -> None:
        if limiter.acquire(30, threading.Event()):
            order.append(name)
            limiter.release(0.1)

    threads = []
    for name in ("first", "second"):
        thread = threading.Thread(target=wait, args=(name,))
        thread.start()
        threads.append(thread)
        while limiter.waiting < len(threads):  # queued, in this order
            threading.Event().wait(0.001)
    limiter.release(0.1)
    for thread in threads:
        thread.join(timeout=30)
    assert order == ["first", "second"]
    assert limiter.in_use == 0 and limiter.waiting == 0


def test_a_full_queue_refuses_at_once_with_the_position_it_would_have_had():
    limiter = SlotLimiter(limit=1, timeout=30, max_waiting=0)
    limiter.acquire(1, threading.Event())
    limiter.release(4.0)  # measured: a request holds a slot 4 s
    limiter.acquire(1, threading.Event())
    with pytest.raises(OverloadedError) as refused:
        limiter.acquire(30, threading.Event())
    error = refused.value
    assert error.details["queue_position"] == 1 and error.details["estimated_wait_seconds"] == 4.0
    assert error.headers["Retry-After"] == "4" and "LLM_MAX_QUEUED_REQUESTS" in error.message


def test_a_wait_longer_than_allowed_is_refused_at_once():
    limiter = SlotLimiter(limit=1, timeout=60)
    limiter.acquire(1, threading.Event())
    limiter.release(20.0)  # measured: a request holds the slot 20 s
    limiter.acquire(1, threading.Event())
    first = threading.Thread(target=lambda: limiter.acquire(60, threading.Event()) and limiter.release(0.1))
    first.start()  # the first in the queue may be served any moment: it waits
    while limiter.waiting < 1:
        threading.Event().wait(0.001)
    with pytest.raises(OverloadedError) as refused:
        limiter.acquire(5, threading.Event())  # behind one more 20 s request: longer than 5 s
    assert refused.value.headers["Retry-After"] == "40" and refused.value.details["queue_position"] == 2
    assert limiter.waiting == 1
    limiter.release(20.0)
    first.join(timeout=30)
    assert limiter.in_use == 0 and limiter.waiting == 0


def test_a_wait_that_runs_out_is_refused_and_leaves_the_queue():
    limiter = SlotLimiter(limit=1, timeout=0.05)
    limiter.acquire(1, threading.Event())
    with pytest.raises(OverloadedError) as refused:
        limiter.acquire(0.05, threading.Event())
    assert "LLM_QUEUE_TIMEOUT_SECONDS" in refused.value.message
    assert limiter.waiting == 0 and limiter.in_use == 1


def test_a_woken_waiter_leaves_without_a_slot():
    limiter = SlotLimiter(limit=1, timeout=30)
    limiter.acquire(1, threading.Event())
    wake = threading.Event()
    wake.set()  # a disconnect, a deadline or a drain
    assert limiter.acquire(30, wake) is False
    assert limiter.waiting == 0 and limiter.in_use == 1


def test_a_full_queue_gives_a_newcomer_of_another_key_the_place_of_the_flooding_keys_newest():
    limiter = SlotLimiter(limit=1, timeout=30, max_waiting=4)
    assert limiter.acquire(1, threading.Event(), "a")
    outcomes: dict[int, str] = {}

    def wait(index: int, key: str) -> None:
        try:
            granted = limiter.acquire(30, threading.Event(), key)
            outcomes[index] = "granted" if granted else "woken"
            if granted:
                limiter.release(0.1, key)
        except OverloadedError as error:
            outcomes[index] = f"refused {error.headers['Retry-After']}"

    threads = []
    for index in range(4):  # the flooding key fills the queue
        threads.append(threading.Thread(target=wait, args=(index, "a")))
        threads[-1].start()
        while limiter.waiting < index + 1:
            threading.Event().wait(0.001)
    threads.append(threading.Thread(target=wait, args=(4, "b")))
    threads[-1].start()
    while 3 not in outcomes:  # the newest of key a is refused, key b queued in its place
        threading.Event().wait(0.001)
    assert outcomes[3] == "refused 1" and limiter.waiting == 4 and limiter.held_by("b") == 1
    with pytest.raises(OverloadedError):  # key a has the most waiting: no place for another of it
        limiter.acquire(30, threading.Event(), "a")
    limiter.release(0.1, "a")  # the freed slot goes to b: fewest running among the waiting keys
    for thread in threads:
        thread.join(timeout=30)
    assert outcomes == {0: "granted", 1: "granted", 2: "granted", 3: "refused 1", 4: "granted"}
    assert limiter.in_use == 0 and limiter.waiting == 0 and sum(limiter.running.values()) == 0


def test_a_key_with_as_many_waiting_takes_no_place():
    limiter = SlotLimiter(limit=1, timeout=30, max_waiting=0)
    assert limiter.acquire(1, threading.Event(), "a")
    with pytest.raises(OverloadedError):
        limiter.acquire(30, threading.Event(), "b")  # nobody waits: nothing to give up
