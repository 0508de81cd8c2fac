"""The prefix cache on CPU: on by default, reused by a recurring system prompt, held under its budget
(LLM_PREFIX_CACHE_MB) by trims that leave running streams whole, and warmed again after a trim."""

from __future__ import annotations

import itertools

import pytest
import requests

from tests.helpers import Server, first_token, metric, rss_mb, samples, wait_for, worker_pid

BUDGET_MB = 48  # small, so that a few requests pass it: four entries of a 650-token sequence
# A recurring system prompt of about 640 tokens (an app's rules), each request a new question.
SYSTEM = " ".join(f"Rule {i}: answer briefly and politely, citing rule {i}." for i in range(40))
_questions = itertools.count()
# The end-of-turn and end-of-text tokens of the embedded model, biased away: a stream runs its length.
NO_END = {"2": -100, "0": -100}


@pytest.fixture(scope="module")
def cached(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prefix-cache")
    with Server(tmp, LLM_MAX_CONCURRENT_REQUESTS="4", LLM_PREFIX_CACHE_MB=str(BUDGET_MB)).running() as srv:
        if requests.get(srv.url + "/api/llms", timeout=5).json()["device"] != "cpu":
            pytest.fail("these tests are for the CPU engine, where the server bounds the cache")
        yield srv


def ask(server, session: requests.Session | None = None, system: str = SYSTEM) -> dict:
    body = {
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": f"Question {next(_questions)}: what is two plus two?"},
        ],
        "max_tokens": 4,
        "temperature": 0,
    }
    response = (session or requests).post(server.url + "/api/chat", json=body, timeout=300)
    assert response.status_code == 200, response.text
    return response.json()


def cache_state(server) -> dict:
    (model,) = requests.get(server.url + "/api/llms", timeout=5).json()["models"]
    return model["prefix_cache"]


def settled(server) -> dict:
    """The cache's state once no trim or warm-up is under way."""
    return wait_for(lambda: (lambda s: s if not s["trimming"] else None)(cache_state(server)), "trim done")


def test_a_recurring_system_prompt_is_reused(cached):
    ask(cached)
    before, metrics_before = settled(cached), samples(cached)
    ask(cached)  # a new question after the same system prompt
    after, metrics_after = cache_state(cached), samples(cached)
    assert after["hits"] == before["hits"] + 1 and after["misses"] == before["misses"]
    assert (
        metric(metrics_after, "llm_prefix_cache_hits_total")
        == metric(metrics_before, "llm_prefix_cache_hits_total") + 1
    )
    ask(cached, system="A different system prompt, never sent before.")
    assert cache_state(cached)["misses"] == after["misses"] + 1


def test_memory_stays_under_the_budget_over_a_shared_prompt_load(cached):
    pid = worker_pid(cached)
    with requests.Session() as session:
        ask(cached, session)
        settled(cached)
        start, first = rss_mb(pid), cache_state(cached)
        peak = start
        for _ in range(24):
            ask(cached, session)
            peak = max(peak, rss_mb(pid))
            state = cache_state(cached)
            # the estimate passes the budget by at most one sequence before the trim empties it
            assert state["estimated_mb"] <= BUDGET_MB + 24, state
    state = settled(cached)
    assert state["trims"] >= first["trims"] + 4 and state["trim_failures"] == 0
    # 24 sequences of about 23 MB each would hold 550 MB; the worker stays within the budget and a
    # margin for what the allocator keeps
    assert peak - start < BUDGET_MB + 100, (start, peak)
    print(
        f"\n24 shared-prompt requests, budget {BUDGET_MB} MB: RSS {start:.0f} -> peak {peak:.0f} MB, {state}"
    )


def test_the_hot_system_prompt_is_warm_again_after_a_trim(cached):
    for _ in range(5):
        ask(cached)
    before = settled(cached)
    while True:  # no request goes while the trim runs: warming yields to clients
        ask(cached)
        state = cache_state(cached)
        if state["trimming"] or state["trims"] > before["trims"]:
            break
    state = settled(cached)
    assert state["rewarms"] > before["rewarms"] and state["hot_prefixes"] >= 1
    ask(cached)  # the first request after the trim finds the prompt cached by the warm-up
    assert cache_state(cached)["hits"] == state["hits"] + 1


def test_a_trim_due_during_concurrent_streams_waits_for_them(cached):
    """The engine's step-error path that empties the cache also resets the model's KV state, which
    corrupts a sequence decoding then (measured: concurrent greedy streams turned to nonsense): a trim
    that falls due while streams decode waits until the runner is idle."""
    count = [{"role": "user", "content": "Count slowly."}]
    body = {"messages": count, "max_tokens": 300, "temperature": 0, "logit_bias": NO_END}
    trims = settled(cached)["trims"]
    with first_token(cached.url, body) as one, first_token(cached.url, body) as two:
        while cache_state(cached)["estimated_mb"] <= BUDGET_MB:  # requests beside the streams
            ask(cached)
        (model,) = requests.get(cached.url + "/api/llms", timeout=5).json()["models"]
        assert model["active_streams"] == 2 and model["prefix_cache"]["trims"] == trims  # due, waiting
        streams = [list(one), list(two)]
    assert settled(cached)["trims"] > trims  # done once the streams left
    for events in streams:
        name, done = events[-1]
        assert name == "done" and done["finish_reason"] == "length", events[-1]
        assert done["usage"]["completion_tokens"] == 300
