"""Per-key shares on the real server: one key filling the queue cannot lock another out, and a key's
max_concurrent holds however the key's earlier requests ended."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.helpers import EMBEDDED, Server, first_token, metric, samples, send_request, wait_for
from tests.integration.test_concurrency import LONG_ANSWER, chat_body

FLOOD, OTHER = "flood-key-0123456789", "other-key-0123456789"
TEAM_A, TEAM_B = "team-a-key-0123456789", "team-b-key-0123456789"
KEYS = f"""
[keys.flood]
key = "{FLOOD}"

[keys.other]
key = "{OTHER}"

[keys.team-a]
key = "sha256:{hashlib.sha256(TEAM_A.encode()).hexdigest()}"
models = ["{EMBEDDED}"]
max_concurrent = 1

[keys.team-b]
key = "{TEAM_B}"
tokens_per_minute = 1000000
"""
# The end-of-turn and end-of-text tokens of the embedded model, biased away: a stream runs its length.
NO_END = {"2": -100, "0": -100}


@pytest.fixture(scope="module")
def one_slot_keyed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fair-queue")
    (tmp / "keys.toml").write_text(KEYS)
    with Server(
        tmp,
        LLM_API_KEYS_FILE=str(tmp / "keys.toml"),
        LLM_MAX_CONCURRENT_REQUESTS="1",
        LLM_MAX_QUEUED_REQUESTS="4",
        LLM_QUEUE_TIMEOUT_SECONDS="300",
    ).running() as srv:
        yield srv


def status_of(sock) -> tuple[int, dict]:
    """The status and JSON body of a raw-socket request's answer (read to its end)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        if body and b"Content-Length" in head:
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            if len(body) >= length:
                break
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body or b"{}")


def test_a_key_flooding_the_queue_gives_up_its_newest_place_to_another_key(one_slot_keyed):
    url = one_slot_keyed.url
    flood = {"Authorization": f"Bearer {FLOOD}"}
    with first_token(url, chat_body(LONG_ANSWER, 400), headers=flood) as held:
        queued = []
        for count in range(1, 5):  # the flooding key fills the queue (4 places)
            queued.append(send_request(url, "/api/chat", chat_body("Hi", 2), flood))
            wait_for(lambda c=count: metric(samples(one_slot_keyed), "llm_requests_waiting") == c, "queued")
        with ThreadPoolExecutor(1) as pool:
            other = pool.submit(
                requests.post,
                url + "/api/chat",
                json=chat_body("Hi", 2),
                headers={"Authorization": f"Bearer {OTHER}"},
                timeout=300,
            )
            status, body = status_of(queued[-1])  # the flooding key's newest place went to the other
            assert status == 503 and body["error"]["code"] == "overloaded", body
            assert metric(samples(one_slot_keyed), "llm_requests_waiting") == 4
            for _ in held:  # the holder finishes: the slot goes to the other key first
                pass
            answer = other.result(timeout=300)
        assert answer.status_code == 200, answer.text
    for sock in queued[:-1]:  # the flooding key's other waiters are served after it
        assert status_of(sock)[0] == 200


@pytest.fixture(scope="module")
def ten_slots(tmp_path_factory):
    """`make run`'s shape: ten slots, keys from a file."""
    tmp = tmp_path_factory.mktemp("shares")
    (tmp / "keys.toml").write_text(KEYS)
    with Server(tmp, LLM_API_KEYS_FILE=str(tmp / "keys.toml")).running() as srv:
        yield srv


def test_a_keys_one_share_holds_after_its_earlier_requests_however_they_ended(ten_slots):
    url = ten_slots.url
    team_a, team_b = {"Authorization": f"Bearer {TEAM_A}"}, {"Authorization": f"Bearer {TEAM_B}"}
    stored_hash = {"Authorization": f"Bearer sha256:{hashlib.sha256(TEAM_A.encode()).hexdigest()}"}
    long_stream = {**chat_body("Tell me a long story.", 200), "logit_bias": NO_END}
    with requests.Session() as session:  # keep-alive connections, as an operator's client has
        for run in range(8):  # the sequence, enough times to catch a count that drifts
            for headers in (team_a, team_b):
                answer = session.post(url + "/api/chat", json=chat_body("Hi", 4), headers=headers)
                assert answer.status_code == 200, answer.text
                assert_timings_within_life(answer)
            for headers in ({}, {"Authorization": "Bearer wrong-key-0123456789"}, stored_hash):
                answer = session.post(url + "/api/chat", json=chat_body("Hi", 4), headers=headers)
                assert answer.status_code == 401
            stream_id = f"share-stream-{run}"
            with first_token(url, long_stream, headers={**team_a, "X-Request-ID": stream_id}) as events:
                second = session.post(url + "/api/chat", json=chat_body("Hi", 4), headers=team_a, timeout=60)
                assert second.status_code == 429, second.text
                error = second.json()["error"]
                assert error["code"] == "rate_limited" and error["details"]["held_by"] == [stream_id]
                rest = list(events)
            assert rest[-1][0] == "done" and rest[-1][1]["usage"]["completion_tokens"] == 200
    found = samples(ten_slots)
    assert metric(found, "llm_requests_running") == 0 and metric(found, "llm_requests_waiting") == 0


def assert_timings_within_life(answer: requests.Response) -> None:
    """Every timing counts from the request's arrival: queue <= first token <= total <= its life."""
    timings = answer.json()["timings"]
    assert timings["queue_seconds"] <= timings["time_to_first_token_seconds"], timings
    assert timings["time_to_first_token_seconds"] <= timings["total_seconds"], timings
    assert timings["total_seconds"] <= answer.elapsed.total_seconds(), (timings, answer.elapsed)


def test_a_keys_stream_whose_client_left_gives_its_share_back_before_its_next_request(ten_slots):
    """What a client that drops its stream after the first event and sends its next request at once
    sees, every time: the stream is cancelled and the key's next request served, whichever of the
    client's close and its new request the server reads first."""
    url, team_a = ten_slots.url, {"Authorization": f"Bearer {TEAM_A}"}
    long_stream = {**chat_body("Tell me a long story.", 200), "logit_bias": NO_END}
    before = metric(samples(ten_slots), "llm_requests_total", endpoint="chat_stream", outcome="cancelled")
    for _ in range(8):
        client = send_request(url, "/api/chat/stream", long_stream, team_a)
        received = b""
        while b"event: token" not in received:
            received += client.recv(4096)
        client.close()  # no wait for the server to notice: the next request goes at once
        answer = requests.post(url + "/api/chat", json=chat_body("Hi", 4), headers=team_a, timeout=120)
        assert answer.status_code == 200, answer.text
        assert_timings_within_life(answer)
    after = metric(samples(ten_slots), "llm_requests_total", endpoint="chat_stream", outcome="cancelled")
    assert after - before == 8
    found = samples(ten_slots)
    assert metric(found, "llm_requests_running") == 0 and metric(found, "llm_requests_waiting") == 0
