"""The worker's memory over many generations: flat with the default settings; with the prefix cache
on, bounded by LLM_MAX_WORKER_MEMORY_MB through recycling the model's runner."""

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


def test_worker_memory_stays_flat_over_hundreds_of_generations(server):
    pid = worker_pid(server)
    generate(server, SHORT, 20)  # warm-up: allocator pools, first-use buffers
    warm = rss_mb(pid)
    generate(server, SHORT, 250)
    grown = rss_mb(pid) - warm
    assert grown < 100, f"RSS grew {grown:.0f} MB over 250 generations"
    print(f"\n250 generations with the default settings: RSS {warm:.0f} MB -> {warm + grown:.0f} MB")


def test_the_memory_bound_recycles_a_runner_whose_prefix_cache_grows(server, tmp_path):
    baseline = rss_mb(worker_pid(server))  # the same model without a cache, warmed up
    bound = int(baseline + 120)
    with Server(tmp_path, LLM_PREFIX_CACHE_N="16", LLM_MAX_WORKER_MEMORY_MB=str(bound)).running() as srv:
        pid = worker_pid(srv)
        peak = 0.0
        for _ in range(40):
            generate(srv, LONGER, 1)
            peak = max(peak, rss_mb(pid))

        def recycled() -> dict | None:
            (model,) = requests.get(srv.url + "/api/llms", timeout=5).json()["models"]
            return model if model["recycles"] >= 1 and model["state"] == "loaded" else None

        model = wait_for(recycled, "a recycle past the bound")
        assert model["engine"]["prefix_cache_n"] == 16
        final = rss_mb(pid)
        assert final < bound + 100, f"RSS {final:.0f} MB with a bound of {bound} MB"
        generate(srv, SHORT, 1)  # serves on after recycling
        print(
            f"\nprefix cache on, bound {bound} MB: {model['recycles']} recycles, peak {peak:.0f} MB, "
            f"final {final:.0f} MB"
        )
