"""Concurrent streams, the slot limit, and disconnects against the real gunicorn gevent worker."""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.helpers import delta, first_token, iter_events, read_events, samples

# at temperature 0 the embedded model answers this with a few hundred tokens: seconds of generation
LONG_ANSWER = "Write a long, detailed essay about the history of computers."

PROMPTS = [
    "List ten animals.",
    "Describe the sea in detail.",
    "Write about mountains at length.",
    "Explain how computers work.",
]


def chat_body(prompt: str, max_tokens: int) -> dict:
    return {"messages": [{"role": "user", "content": prompt}], "temperature": 0, "max_tokens": max_tokens}


def test_four_concurrent_streams_complete_with_their_own_tokens_while_live_answers(server):
    expected = [
        requests.post(server.url + "/api/chat", json=chat_body(p, 24), timeout=300).json() for p in PROMPTS
    ]
    latencies: list[float] = []
    stop = threading.Event()

    def probe_liveness() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                started = time.perf_counter()
                response = session.get(server.url + "/health/live", timeout=5)
                latencies.append(time.perf_counter() - started)
                assert response.status_code == 200
                stop.wait(0.02)  # pace the probes: a busy client would steal the engine's cores

    def stream(prompt: str) -> list[tuple[str, dict]]:
        response = requests.post(
            server.url + "/api/chat/stream", json=chat_body(prompt, 24), timeout=300, stream=True
        )
        assert response.status_code == 200
        return read_events(response)

    prober = threading.Thread(target=probe_liveness)
    before = samples(server)
    prober.start()
    try:
        with ThreadPoolExecutor(len(PROMPTS)) as executor:
            results = list(executor.map(stream, PROMPTS))
    finally:
        stop.set()
        prober.join()
    after = samples(server)
    gate = "llm_prefill_gate_wait_seconds_count"
    if requests.get(server.url + "/api/llms", timeout=5).json()["device"] == "cpu":  # one prefill at a time
        assert delta(after, before, gate, endpoint="chat_stream") == len(PROMPTS)

    for want, events in zip(expected, results, strict=True):
        tokens = [data["delta"] for name, data in events if name == "token"]
        name, done = events[-1]
        assert name == "done"
        assert done["finish_reason"] == want["finish_reason"] == "length"
        assert len(tokens) == done["usage"]["completion_tokens"] == 24
        assert "".join(tokens) == done["message"]["content"] == want["message"]["content"]
    assert len(latencies) >= 10
    print(
        f"\n/health/live during 4 streams: {len(latencies)} probes, "
        f"median {statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )


def test_concurrent_requests_each_start_before_the_first_one_ends(server):
    """Four identical prompts released together (the case a batched prefill fails on CPU): every
    one succeeds, and every one's first token comes before any answer is whole, since the engine
    interleaves their decoding instead of running them one after another."""
    body = chat_body(LONG_ANSWER, 120)
    order: list[tuple[str, int]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def stream(index: int) -> dict:
        barrier.wait()
        with requests.post(server.url + "/api/chat/stream", json=body, timeout=600, stream=True) as response:
            assert response.status_code == 200, response.text
            seen_first = False
            for name, data in iter_events(response):
                if name == "token" and not seen_first:
                    seen_first = True
                    with lock:
                        order.append(("first", index))
                if name in ("done", "error"):
                    with lock:
                        order.append(("end", index))
                    return {"event": name, **data}
        raise AssertionError("the stream ended without done or error")

    with ThreadPoolExecutor(4) as executor:
        results = list(executor.map(stream, range(4)))
    assert [r["event"] for r in results] == ["done"] * 4, results
    assert all(
        r["finish_reason"] in ("length", "stop") and r["usage"]["completion_tokens"] > 0 for r in results
    )
    first_end = next(i for i, (what, _) in enumerate(order) if what == "end")
    assert sorted(index for what, index in order[:first_end] if what == "first") == [0, 1, 2, 3], order


def test_requests_over_the_limit_get_503_with_retry_after_and_their_queue_position(no_queue_server):
    url = no_queue_server.url
    with first_token(url, chat_body(LONG_ANSWER, 300)):  # the slot is taken, and no request may queue
        refused = requests.post(url + "/api/generate", json={"prompt": "x", "max_tokens": 2}, timeout=30)
        assert refused.status_code == 503
        assert int(refused.headers["Retry-After"]) >= 1
        error = refused.json()["error"]
        assert error["code"] == "overloaded" and "LLM_MAX_QUEUED_REQUESTS" in error["message"]
        assert error["details"]["queue_position"] == 1 and error["details"]["limit"] == 1
    assert requests.get(url + "/health/live", timeout=5).status_code == 200


def test_disconnect_frees_the_slot_and_stops_the_generation(one_slot_server):
    url = one_slot_server.url
    body = chat_body(LONG_ANSWER, 300)
    reference = requests.post(url + "/api/chat", json=body, timeout=600).json()
    # what the engine would still owe if it kept generating the abandoned sequence
    remaining = reference["timings"]["total_seconds"] - reference["timings"]["time_to_first_token_seconds"]
    assert reference["usage"]["completion_tokens"] >= 150

    with requests.post(url + "/api/chat/stream", json=body, timeout=300, stream=True) as abandoned:
        events = iter_events(abandoned)
        assert [next(events)[0] for _ in range(3)] == ["token"] * 3
    # the connection is closed: with one slot, the next request is served only if it was freed
    follow = requests.post(
        url + "/api/generate", json={"prompt": "Hi", "max_tokens": 4, "temperature": 0}, timeout=600
    )
    assert follow.status_code == 200, follow.text
    # with max_seqs=1 the engine runs one sequence at a time: had the abandoned one gone on, the
    # follow-up would have waited for most of `remaining` before its first token
    assert follow.json()["timings"]["time_to_first_token_seconds"] < remaining / 2
    listing = requests.get(url + "/api/llms", timeout=5).json()
    assert listing["models"][0]["active_streams"] == 0
    first_token_ms = follow.json()["timings"]["time_to_first_token_seconds"] * 1000
    print(f"\nfirst token after a disconnect: {first_token_ms:.0f} ms ({remaining:.1f} s were left)")
