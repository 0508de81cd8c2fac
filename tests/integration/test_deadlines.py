"""Request deadlines (`timeout` field, LLM_REQUEST_TIMEOUT_SECONDS) on the real server: the text so
far with finish_reason `timeout`, or 504 when nothing was generated, counted as `timeout`."""

from __future__ import annotations

import pytest
import requests

from tests.helpers import EMBEDDED, delta, first_token, read_events, samples
from tests.integration.test_concurrency import LONG_ANSWER, chat_body


@pytest.fixture
def whole_answer(server) -> dict:
    """The long answer read to its end on this machine, just before the test that uses it:
    deadlines below are fractions of its time."""
    answer = requests.post(server.url + "/api/chat", json=chat_body(LONG_ANSWER, 300), timeout=600).json()
    assert answer["usage"]["completion_tokens"] >= 100
    return answer


def third_of(answer: dict) -> float:
    timings = answer["timings"]
    return (
        timings["time_to_first_token_seconds"]
        + (timings["total_seconds"] - timings["time_to_first_token_seconds"]) / 3
    )


def test_a_stream_past_its_deadline_ends_with_the_text_so_far(server, whole_answer):
    before = samples(server)
    body = {**chat_body(LONG_ANSWER, 300), "timeout": third_of(whole_answer)}
    with requests.post(server.url + "/api/chat/stream", json=body, timeout=300, stream=True) as response:
        assert response.status_code == 200
        events = read_events(response)
    tokens = [data["delta"] for name, data in events if name == "token"]
    name, done = events[-1]
    assert name == "done" and done["finish_reason"] == "timeout"
    assert done["message"]["content"] == "".join(tokens)
    assert 0 < done["usage"]["completion_tokens"] == len(tokens) < whole_answer["usage"]["completion_tokens"]
    assert done["usage"]["prompt_tokens"] > 0
    after = samples(server)
    labels = {"model": EMBEDDED, "endpoint": "chat_stream", "outcome": "timeout"}
    assert delta(after, before, "llm_requests_total", **labels) == 1
    assert samples(server)[("llm_requests_running", ())] == 0


def test_a_non_streaming_request_past_its_deadline_answers_200_with_the_text_so_far(server, whole_answer):
    body = {**chat_body(LONG_ANSWER, 300), "timeout": third_of(whole_answer)}
    answer = requests.post(server.url + "/api/chat", json=body, timeout=300)
    assert answer.status_code == 200
    reply = answer.json()
    assert reply["finish_reason"] == "timeout"
    assert 0 < reply["usage"]["completion_tokens"] < whole_answer["usage"]["completion_tokens"]
    assert whole_answer["message"]["content"].startswith(reply["message"]["content"])  # greedy: a prefix


def test_a_deadline_before_any_output_is_504(server):
    for path in ("/api/chat", "/api/chat/stream"):
        response = requests.post(
            server.url + path, json={**chat_body(LONG_ANSWER, 50), "timeout": 0.001}, timeout=60
        )
        assert response.status_code == 504, response.text
        assert response.json()["error"]["code"] == "deadline_exceeded"
    openai = requests.post(
        server.url + "/v1/chat/completions",
        json={"model": EMBEDDED, "messages": [{"role": "user", "content": "Hi"}], "timeout": 0.001},
        timeout=60,
    )
    assert openai.status_code == 504 and openai.json()["error"]["code"] == "deadline_exceeded"


def test_a_deadline_that_passes_in_the_queue_is_504_and_frees_the_place(one_slot_server):
    url = one_slot_server.url
    with first_token(url, chat_body(LONG_ANSWER, 300)):
        waited = requests.post(url + "/api/chat", json={**chat_body("Hi", 4), "timeout": 0.5}, timeout=60)
        assert waited.status_code == 504 and waited.json()["error"]["code"] == "deadline_exceeded"
        assert samples(one_slot_server)[("llm_requests_waiting", ())] == 0


def test_the_server_default_deadline_applies(tmp_path, whole_answer):
    from tests.helpers import Server

    with Server(tmp_path, LLM_REQUEST_TIMEOUT_SECONDS=f"{third_of(whole_answer):.3f}").running() as srv:
        # three times the measured answer, its end biased away: the deadline falls well inside it
        # even if this fresh server runs faster than the shared one did (a trim's warm-up, or load)
        longer = {**chat_body(LONG_ANSWER, 900), "logit_bias": {"2": -100, "0": -100}}
        reply = requests.post(srv.url + "/api/chat", json=longer, timeout=300).json()
        assert reply["finish_reason"] == "timeout"
        settings = {**chat_body("Hi", 2), "timeout": 100}  # a request's own timeout wins
        assert requests.post(srv.url + "/api/chat", json=settings, timeout=300).json()["finish_reason"] in (
            "stop",
            "length",
        )
