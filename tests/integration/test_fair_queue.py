"""The queue's bound is fair between API keys: one key filling the queue cannot lock another out."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.helpers import Server, first_token, metric, samples, send_request, wait_for
from tests.integration.test_concurrency import LONG_ANSWER, chat_body

FLOOD, OTHER = "flood-key-0123456789", "other-key-0123456789"
KEYS = f"""
[keys.flood]
key = "{FLOOD}"

[keys.other]
key = "{OTHER}"
"""


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
