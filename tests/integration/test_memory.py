"""The worker's memory over many generations: bounded with the default settings (the prefix cache on
CPU is trimmed past LLM_PREFIX_CACHE_MB); with the cache unbounded, by LLM_MAX_WORKER_MEMORY_MB
through recycling the model's runner."""

from __future__ import annotations

import requests

from tests.helpers import Server, rss_mb, wait_for, worker_pid

# Every prompt differs: the engine's prefix cache keys on the whole sequence, so repeating one prompt
# would replace one entry and hide the growth.
SHORT = {"prompt": "Say hi, number {}.", "max_tokens": 8, "temperature": 0}
LONGER = {"prompt": "Describe the sea, take {}.", "max_tokens": 64, "temperature": 0}
_counter = iter(range(10**9))


def generate(server, body: dict, times: int) -> None:
    with requests.Session() as session:
        for _ in range(times):
            distinct = {**body, "prompt": body["prompt"].format(next(_counter))}
            response = session.post(server.url + "/api/generate", json=distinct, timeout=300)
            assert response.status_code == 200, response.text


def test_worker_memory_stays_bounded_over_hundreds_of_generations(server):
    pid = worker_pid(server)
    generate(server, SHORT, 20)  # warm-up: allocator pools, first-use buffers
    warm = rss_mb(pid)
    (model,) = requests.get(server.url + "/api/llms", timeout=5).json()["models"]
    cache = model["prefix_cache"]
    budget = cache["budget_mb"] if cache else 0  # None on CUDA, where the engine evicts itself
    generate(server, SHORT, 250)  # 250 sequences of about 12 MB each: 2.9 GB if nothing were trimmed
    grown = rss_mb(pid) - warm
    assert grown < budget + 100, f"RSS grew {grown:.0f} MB over 250 generations (cache budget {budget} MB)"
    print(f"\n250 generations with the default settings: RSS {warm:.0f} MB -> {warm + grown:.0f} MB")


def grown_with_the_prefix_cache(tmp_path, **bound: str) -> tuple[float, dict, Server]:
    """RSS after 40 distinct generations with the prefix cache on, and the model's listing."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    with Server(tmp_path, LLM_PREFIX_CACHE_N="16", LLM_PREFIX_CACHE_MB="0", **bound).running() as srv:
        pid = worker_pid(srv)
        generate(srv, SHORT, 1)
        srv.baseline = rss_mb(pid)
        generate(srv, LONGER, 40)

        def settled() -> dict | None:
            (model,) = requests.get(srv.url + "/api/llms", timeout=5).json()["models"]
            return model if model["state"] == "loaded" else None

        model = wait_for(settled, "the model loaded")
        rss = rss_mb(pid)
        generate(srv, SHORT, 1)  # serves on (after any recycle)
    return rss, model, srv


def test_the_memory_bound_recycles_a_runner_whose_prefix_cache_grows(tmp_path):
    unbounded, model, srv = grown_with_the_prefix_cache(tmp_path / "unbounded")
    bound = int(srv.baseline + 120)  # the worker after one generation, and room for a few entries
    assert model["recycles"] == 0 and unbounded > bound  # the cache grows past the bound
    bounded, model, _ = grown_with_the_prefix_cache(tmp_path / "bounded", LLM_MAX_WORKER_MEMORY_MB=str(bound))
    assert model["recycles"] >= 1 and model["engine"]["prefix_cache_n"] == 16
    # a recycle frees the cache; glibc may keep part of what was freed, so RSS ends near the bound
    # rather than under it, but far below the same load without the bound
    assert bounded < unbounded - 50, (bounded, unbounded)
    print(
        f"\nprefix cache on, 40 generations: {unbounded:.0f} MB without a bound; with a bound of "
        f"{bound} MB: {model['recycles']} recycles, {bounded:.0f} MB"
    )
