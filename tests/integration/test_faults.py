"""Faults made for real against the real server: an engine panic, SIGTERM mid-stream (drain, and the
drain bound), kill -9 of the worker, a burst far over the limit, clients that stall mid-header."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.helpers import EMBEDDED, Server, delta, first_token, read_events, rss_mb, samples, worker_pid
from tests.integration.test_concurrency import LONG_ANSWER, chat_body

PANIC_AT_SUBMIT, PANIC_MID_STREAM = "PANIC-AT-SUBMIT", "PANIC-MID-STREAM"


@pytest.fixture(scope="module")
def panicking_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("panics")
    with Server(tmp, config="tests/panicking_engine.conf.py").running() as srv:
        yield srv


def test_an_engine_panic_is_an_engine_error_and_the_worker_serves_on(panicking_server):
    url = panicking_server.url
    before = samples(panicking_server)
    for path in ("/api/chat", "/api/chat/stream"):
        response = requests.post(url + path, json=chat_body(PANIC_AT_SUBMIT, 8), timeout=120)
        assert response.status_code == 500
        error = response.json()["error"]
        assert error["code"] == "engine_error" and error["request_id"] == response.headers["X-Request-ID"]
    with requests.post(
        url + "/api/chat/stream", json=chat_body(PANIC_MID_STREAM, 50), timeout=120, stream=True
    ) as response:
        assert response.status_code == 200
        events = read_events(response)
        request_id = response.headers["X-Request-ID"]
    assert [name for name, _ in events[:-1]] == ["token"] * (len(events) - 1) and len(events) > 1
    name, error = events[-1]
    assert name == "error" and error["error"]["code"] == "engine_error"
    assert error["error"]["request_id"] == request_id
    after = samples(panicking_server)
    for endpoint, count in (("chat", 1), ("chat_stream", 2)):
        labels = {"model": EMBEDDED, "endpoint": endpoint, "outcome": "server_error"}
        assert delta(after, before, "llm_requests_total", **labels) == count
    assert after[("llm_requests_running", ())] == 0
    assert request_id in panicking_server.log(), "the failure is logged with the request id"
    ok = requests.post(url + "/api/chat", json=chat_body("Hi", 4), timeout=120)
    assert ok.status_code == 200


def test_sigterm_mid_stream_lets_the_stream_finish_refuses_new_work_then_exits_cleanly(tmp_path):
    # A drain bound far past the stream's length on any machine, however loaded: what is tested is
    # that the stream finishes, not how fast (the bound has its own test below).
    with Server(tmp_path, LLM_DRAIN_SECONDS="300").running() as srv:
        with first_token(srv.url, chat_body(LONG_ANSWER, 200)) as events:
            sent = time.monotonic()
            srv.process.send_signal(signal.SIGTERM)
            srv.wait_until("/health/ready", statuses=(503,))
            # a draining replica sends new work elsewhere (the balancer retries on 503)
            refused = requests.post(
                srv.url + "/api/generate", json={"prompt": "Hi", "max_tokens": 2}, timeout=60
            )
            assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
            assert refused.json()["error"]["code"] == "shutting_down"
            openai = requests.post(
                srv.url + "/v1/chat/completions",
                json={"model": EMBEDDED, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2},
                timeout=60,
            )
            assert openai.status_code == 503 and openai.json()["error"]["code"] == "shutting_down"
            rest = list(events)
        assert rest[-1][0] == "done" and rest[-1][1]["finish_reason"] == "length"
        assert srv.process.wait(timeout=60) == 0
        print(f"\ndrain: stream finished and exit 0 {time.monotonic() - sent:.1f}s after SIGTERM")


def test_the_drain_bound_ends_a_stream_with_an_error_event(tmp_path):
    with Server(tmp_path, LLM_DRAIN_SECONDS="3").running() as srv:
        with first_token(srv.url, chat_body(LONG_ANSWER, 2000)) as events:
            sent = time.monotonic()
            srv.process.send_signal(signal.SIGTERM)
            rest = list(events)
        name, error = rest[-1]
        assert name == "error" and error["error"]["code"] == "shutting_down"
        assert "LLM_DRAIN_SECONDS" in error["error"]["message"]
        assert srv.process.wait(timeout=60) == 0
        elapsed = time.monotonic() - sent
        assert "generation shutdown" in srv.log()
        print(f"\ndrain bound 3s: stream cut with an error event, exit 0 {elapsed:.1f}s after SIGTERM")


def test_a_killed_worker_ends_its_streams_and_a_new_one_serves(tmp_path):
    with Server(tmp_path).running() as srv:
        old = worker_pid(srv)
        with first_token(srv.url, chat_body(LONG_ANSWER, 300)) as events:
            killed = time.monotonic()
            os.kill(old, signal.SIGKILL)
            with pytest.raises(requests.exceptions.RequestException):
                list(events)  # the connection ends; it never hangs (the read timeout would fail it)
        srv.wait_until("/health/ready")
        ready = time.monotonic() - killed
        assert worker_pid(srv) != old
        again = requests.post(srv.url + "/api/chat", json=chat_body("Hi", 4), timeout=120)
        assert again.status_code == 200
        print(f"\nkill -9 of the worker: ready again {ready:.1f}s later")


def test_a_burst_far_over_the_limit_gets_only_200_or_503_and_memory_stays_flat(tmp_path):
    with Server(tmp_path, LLM_MAX_CONCURRENT_REQUESTS="10", LLM_QUEUE_TIMEOUT_SECONDS="5").running() as srv:
        body = {"prompt": "Say hi.", "max_tokens": 4, "temperature": 0}

        def one(_: int) -> int | str:
            try:
                return requests.post(srv.url + "/api/generate", json=body, timeout=120).status_code
            except requests.RequestException as error:
                return type(error).__name__

        pid = worker_pid(srv)
        rss = []
        totals: Counter = Counter()
        for _burst in range(3):
            with ThreadPoolExecutor(100) as pool:
                statuses = Counter(pool.map(one, range(100)))
            totals.update(statuses)
            assert set(statuses) <= {200, 503}, statuses
            rss.append(rss_mb(pid))
        refused = requests.post(srv.url + "/api/generate", json=body, timeout=120)
        assert refused.status_code == 200
        assert rss[-1] - rss[0] < 100, rss
        print(f"\n3 bursts of 100 against 10 slots: {dict(totals)}; worker RSS MB {[round(r) for r in rss]}")


def test_clients_that_stall_mid_header_do_not_stop_the_server(server):
    address = server.url.removeprefix("http://").split(":")
    stalled = []
    try:
        for _ in range(50):
            client = socket.create_connection((address[0], int(address[1])), timeout=10)
            client.sendall(b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: appl")
            stalled.append(client)
        assert requests.get(server.url + "/health/live", timeout=10).status_code == 200
        answer = requests.post(server.url + "/api/chat", json=chat_body("Hi", 4), timeout=120)
        assert answer.status_code == 200
    finally:
        for client in stalled:
            client.close()
