"""The slot limiter: arrival order, the bounded queue, the wait, and the estimate behind Retry-After."""

from __future__ import annotations

import threading

import pytest

from app.engine.faults import KeyShareUsed, SlotsBusy
from app.engine.limiter import SlotLimiter
from app.error_shapes import NATIVE
from app.fault_errors import fault_error


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
    with pytest.raises(SlotsBusy) as refused:
        limiter.acquire(30, threading.Event())
    error = fault_error(refused.value, NATIVE)
    assert error.status == 503 and error.code == "overloaded"
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
    with pytest.raises(SlotsBusy) as refused:
        limiter.acquire(5, threading.Event())  # behind one more 20 s request: longer than 5 s
    assert refused.value.retry_after == 40 and refused.value.position == 2
    assert limiter.waiting == 1
    limiter.release(20.0)
    first.join(timeout=30)
    assert limiter.in_use == 0 and limiter.waiting == 0


def test_a_wait_that_runs_out_is_refused_and_leaves_the_queue():
    limiter = SlotLimiter(limit=1, timeout=0.05)
    limiter.acquire(1, threading.Event())
    with pytest.raises(SlotsBusy) as refused:
        limiter.acquire(0.05, threading.Event())
    assert "LLM_QUEUE_TIMEOUT_SECONDS" in fault_error(refused.value, NATIVE).message
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
        except SlotsBusy as error:
            outcomes[index] = f"refused {error.retry_after}"

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
    with pytest.raises(SlotsBusy):  # key a has the most waiting: no place for another of it
        limiter.acquire(30, threading.Event(), "a")
    limiter.release(0.1, "a")  # the freed slot goes to b: fewest running among the waiting keys
    for thread in threads:
        thread.join(timeout=30)
    assert outcomes == {0: "granted", 1: "granted", 2: "granted", 3: "refused 1", 4: "granted"}
    assert limiter.in_use == 0 and limiter.waiting == 0 and sum(limiter.running.values()) == 0


def test_a_key_with_as_many_waiting_takes_no_place():
    limiter = SlotLimiter(limit=1, timeout=30, max_waiting=0)
    assert limiter.acquire(1, threading.Event(), "a")
    with pytest.raises(SlotsBusy):
        limiter.acquire(30, threading.Event(), "b")  # nobody waits: nothing to give up


# -- the lowest lane and priorities -----------------------------------------------------------------
def _waiting_thread(limiter: SlotLimiter, granted: list[str], name: str, **kwargs) -> threading.Thread:
    def wait() -> None:
        if limiter.acquire(30, threading.Event(), name, **kwargs):
            granted.append(name)

    thread = threading.Thread(target=wait)
    thread.start()
    return thread


def _until(condition) -> None:
    for _ in range(30_000):
        if condition():
            return
        threading.Event().wait(0.001)  # polling for another thread's state, not synchronisation
    raise AssertionError("never happened")


def test_background_work_leaves_one_slot_for_interactive_requests():
    limiter = SlotLimiter(limit=3, timeout=30)
    assert limiter.background_limit == 2
    assert limiter.acquire(1, threading.Event(), "batch", background=True)
    assert limiter.acquire(1, threading.Event(), "batch", background=True)
    granted: list[str] = []
    third = _waiting_thread(limiter, granted, "batch", background=True)
    _until(lambda: len(limiter._background) == 1)
    assert limiter.in_use == 2 and not granted  # a slot is free, but not for background work
    assert limiter.acquire(1, threading.Event(), "person")  # the interactive request gets it at once
    limiter.release(1.0, "batch", background=True)
    third.join(timeout=30)
    assert granted == ["batch"] and limiter.background_running == 2 and limiter.in_use == 3


def test_a_freed_slot_goes_to_an_interactive_waiter_before_background_work():
    limiter = SlotLimiter(limit=2, timeout=30)
    assert limiter.acquire(1, threading.Event(), "person")
    assert limiter.acquire(1, threading.Event(), "batch", background=True)
    granted: list[str] = []
    background = _waiting_thread(limiter, granted, "batch", background=True)
    _until(lambda: len(limiter._background) == 1)
    interactive = _waiting_thread(limiter, granted, "person")
    _until(lambda: limiter.waiting == 1)
    limiter.release(1.0, "batch", background=True)
    interactive.join(timeout=30)
    assert granted == ["person"]
    limiter.release(1.0, "person")
    background.join(timeout=30)
    assert granted == ["person", "batch"]


def test_background_holds_are_not_in_the_interactive_estimate_or_queue_bound():
    limiter = SlotLimiter(limit=1, timeout=30, max_waiting=0)
    assert limiter.acquire(1, threading.Event(), "batch", background=True)
    granted: list[str] = []
    waiter = _waiting_thread(limiter, granted, "batch", background=True)  # no queue bound for the lane
    _until(lambda: len(limiter._background) == 1)
    limiter.release(100.0, "batch", background=True)
    waiter.join(timeout=30)
    assert granted == ["batch"] and limiter.mean_hold_seconds == 0.0


def test_a_higher_priority_key_waits_less():
    limiter = SlotLimiter(limit=1, timeout=30)
    assert limiter.acquire(1, threading.Event(), "holder")
    granted: list[str] = []
    low = _waiting_thread(limiter, granted, "low")
    _until(lambda: limiter.waiting == 1)
    high = _waiting_thread(limiter, granted, "high", priority=5)
    _until(lambda: limiter.waiting == 2)
    limiter.release(0.1, "holder")
    high.join(timeout=30)
    assert granted == ["high"]
    limiter.release(0.1, "high")
    low.join(timeout=30)
    assert granted == ["high", "low"]


def test_a_keys_share_holds_when_telling_the_preemption_lets_another_request_of_the_key_in():
    """on_interactive may switch greenlets; a request of the same key that takes the share meanwhile
    must not let this one queue past the share."""
    limiter = SlotLimiter(limit=2, timeout=30)
    assert limiter.acquire(1, threading.Event(), "person")
    assert limiter.acquire(1, threading.Event(), "batch", background=True)  # every slot is busy
    limiter.release(0.1, "person")
    assert limiter.acquire(1, threading.Event(), "other")

    def meanwhile() -> None:  # while the preemption is told, the key's other request takes a slot
        limiter.on_interactive = None
        limiter.release(0.1, "other")
        assert limiter.acquire(1, threading.Event(), "team-a", 1)

    limiter.on_interactive = meanwhile
    with pytest.raises(KeyShareUsed):
        limiter.acquire(1, threading.Event(), "team-a", 1)
    assert limiter.held_by("team-a") == 1
