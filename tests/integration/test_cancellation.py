"""A client that leaves frees its slot and stops its generation at every stage: queued, in prefill,
during a non-streaming request (the stream's decode is in test_concurrency)."""

from __future__ import annotations

import time

import pytest
import requests

from tests.helpers import EMBEDDED, delta, first_token, leave, metric, samples, send_request, wait_for
from tests.integration.test_concurrency import LONG_ANSWER, chat_body


def cancelled(server, before: dict, endpoint: str) -> float:
    return delta(
        samples(server), before, "llm_requests_total", model=EMBEDDED, endpoint=endpoint, outcome="cancelled"
    )


def test_a_client_that_leaves_while_queued_is_dropped_before_it_runs(one_slot_server):
    url = one_slot_server.url
    with first_token(url, chat_body(LONG_ANSWER, 300)):  # the only slot is taken
        before = samples(one_slot_server)
        queued = send_request(url, "/api/chat", chat_body("Count to ten.", 50))
        wait_for(lambda: metric(samples(one_slot_server), "llm_requests_waiting") == 1, "a request queued")
        left = time.monotonic()
        queued.close()
        wait_for(lambda: cancelled(one_slot_server, before, "chat") == 1, "the queued request cancelled")
        seen = time.monotonic() - left
        after = samples(one_slot_server)
        # dropped while the held stream still has the slot: it never ran
        assert metric(after, "llm_requests_waiting") == 0 and metric(after, "llm_requests_running") == 1
        assert delta(after, before, "llm_queue_wait_seconds_count", endpoint="chat") == 1
    print(f"\nqueued request: cancellation recorded {seen * 1000:.0f} ms after the client left")


def test_a_client_that_leaves_a_non_streaming_request_stops_its_generation(one_slot_server):
    url = one_slot_server.url
    body = chat_body(LONG_ANSWER, 300)
    reference = requests.post(url + "/api/chat", json=body, timeout=600).json()
    whole = reference["usage"]["completion_tokens"]
    before = samples(one_slot_server)
    freed = leave(one_slot_server, send_request(url, "/api/chat", body), running=1)
    after = samples(one_slot_server)
    assert (
        delta(after, before, "llm_requests_total", model=EMBEDDED, endpoint="chat", outcome="cancelled") == 1
    )
    # it stopped where it was: fewer tokens than the same request produces when read to its end
    assert delta(after, before, "llm_completion_tokens_total", model=EMBEDDED) < whole
    follow = requests.post(url + "/api/generate", json={"prompt": "Hi", "max_tokens": 4}, timeout=600)
    assert follow.status_code == 200
    print(f"\nnon-streaming request: slot freed {freed * 1000:.0f} ms after the client left ({whole} tokens)")


def test_a_client_that_leaves_during_prefill_frees_the_slot(one_slot_server):
    url = one_slot_server.url
    body = {"messages": [{"role": "user", "content": "Summarise: " + "the cat sat on the mat. " * 50}]}
    body.update(temperature=0, max_tokens=200)
    before = samples(one_slot_server)
    freed = leave(one_slot_server, send_request(url, "/api/chat/stream", body), running=1)
    assert cancelled(one_slot_server, before, "chat_stream") == 1
    listing = requests.get(url + "/api/llms", timeout=5).json()
    assert listing["models"][0]["active_streams"] == 0
    # The engine cannot stop a prefill midway: the next request's first token waits for its end
    # (and then for nothing more: the abandoned sequence is dropped at its first token).
    follow = requests.post(url + "/api/generate", json={"prompt": "Hi", "max_tokens": 2}, timeout=600)
    assert follow.status_code == 200
    waited = follow.json()["timings"]["time_to_first_token_seconds"]
    print(
        f"\nprefill: slot freed {freed * 1000:.0f} ms after the client left; next first token {waited:.2f} s"
    )


def test_a_client_that_leaves_while_waiting_at_the_prefill_gate_is_never_submitted(server):
    """Four slots, one prompt in prefill at a time: the second request waits at the gate while the
    first prefills; when its client leaves there, it is dropped without ever reaching the engine
    (the prefix cache's account counts every submission as a hit or a miss)."""
    url = server.url

    def submitted() -> int:
        (model,) = requests.get(url + "/api/llms", timeout=5).json()["models"]
        cache = model["prefix_cache"]
        return cache["hits"] + cache["misses"] if cache else 0

    if requests.get(url + "/api/llms", timeout=5).json()["models"][0]["prefix_cache"] is None:
        pytest.fail("the prefill gate and its account are CPU behaviour")
    wait_for(lambda: metric(samples(server), "llm_requests_running") == 0, "the server idle")
    long_prompt = {"messages": [{"role": "user", "content": "Summarise: " + "a dog ran in the park. " * 120}]}
    long_prompt.update(temperature=0, max_tokens=2)
    before, counted = samples(server), submitted()
    first = send_request(url, "/api/chat/stream", long_prompt)
    wait_for(lambda: submitted() == counted + 1, "the first prompt submitted (prefilling)")
    waiting = send_request(url, "/api/chat/stream", chat_body("Count to ten.", 20))
    wait_for(lambda: metric(samples(server), "llm_requests_running") == 2, "the second holding a slot")
    waiting.close()  # it waits at the gate: the first prompt is still in prefill
    wait_for(lambda: cancelled(server, before, "chat_stream") == 1, "the waiting request cancelled")
    first.recv(1)
    first.close()
    wait_for(lambda: metric(samples(server), "llm_requests_running") == 0, "both slots free")
    assert submitted() == counted + 1  # the one that left was never submitted
