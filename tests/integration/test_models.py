"""Model sources and lifecycle on the real gunicorn and engine: every source, the catalog, several models,
loading on first request, the residency bound, a hub mirror, the pull command and offline serving."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from app.engine.catalog import embedded_model_file
from tests.helpers import EMBEDDED, ROOT, Server, iter_events, server_env
from tests.hub_mirror import HubMirror
from tests.tiny_models import GEMMA_TEMPLATE, as_hub_cache, build_tiny_llama, gemma_gguf

GEMMA = "google/gemma-3-270m"
TINY = "test/tiny-llama"  # safetensors under LLM_MODEL_PATH
TINY_CACHED = "test/tiny-cached"  # safetensors in the hub cache
SMOL_CACHED = "test/smol-cached"  # GGUF in the hub cache
CAPPED = "test/tiny-capped"  # catalog: TINY's files, Q4K, context capped at 64
TINY_BY_PATH = "test/tiny-by-path"  # catalog: a safetensors directory named by path
SMOL_LOCAL = "test/smol-local"  # GGUF under LLM_MODEL_PATH
CACHED_COMMIT, SMOL_COMMIT = "1" * 40, "2" * 40


def post(server, path: str, body: dict, **kwargs) -> requests.Response:
    return requests.post(server.url + path, json=body, timeout=300, **kwargs)


def chat(server, model: str, content: str = "Hello", max_tokens: int = 4) -> requests.Response:
    body = {"model": model, "messages": [{"role": "user", "content": content}]}
    return post(server, "/api/chat", {**body, "temperature": 0, "max_tokens": max_tokens})


def listing(server) -> dict[str, dict]:
    models = requests.get(server.url + "/api/llms", timeout=10).json()["models"]
    return {m["id"]: m for m in models}


def metric(server, name: str, model: str) -> float:
    text = requests.get(server.url + "/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels.get("model") == model:
                return sample.value
    raise AssertionError(f"{name} for {model} not in /metrics")


@pytest.fixture(scope="session")
def model_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("model-files")
    smol = root / "smol"
    smol.mkdir()
    shutil.copy(embedded_model_file(), smol / embedded_model_file().name)
    return SimpleNamespace(
        tiny=build_tiny_llama(root / "tiny"),
        tiny_b=build_tiny_llama(root / "tiny-b", seed=1),
        gemma=gemma_gguf(root / "gemma"),
        smol=smol,
    )


# -- several models from every local source, listed explicitly ---------------------------------
@pytest.fixture(scope="module")
def multi_server(tmp_path_factory, model_files):
    tmp = tmp_path_factory.mktemp("multi")
    shutil.copytree(model_files.tiny, tmp / "models" / TINY)
    shutil.copytree(model_files.smol, tmp / "models" / SMOL_LOCAL)
    as_hub_cache(model_files.tiny, tmp / "hf", TINY_CACHED, CACHED_COMMIT)
    as_hub_cache(model_files.smol, tmp / "hf", SMOL_CACHED, SMOL_COMMIT)
    (tmp / "templates").mkdir()
    (tmp / "templates" / "gemma3.jinja").write_text(GEMMA_TEMPLATE)
    (tmp / "models.toml").write_text(
        f"""
[models."{GEMMA}"]
alias = "gemma"
path = "{model_files.gemma}"
chat_template = "templates/gemma3.jinja"

[models."{CAPPED}"]
alias = "tiny-capped"
repo = "{TINY}"
in_situ_quant = "Q4K"
max_context = 64

[models."{TINY_BY_PATH}"]
path = "{model_files.tiny}"
"""
    )
    allowed = [EMBEDDED, "gemma", TINY, TINY_CACHED, SMOL_CACHED, "tiny-capped", TINY_BY_PATH, SMOL_LOCAL]
    with Server(
        tmp,
        LLM_ALLOWED_MODELS=",".join(allowed),
        LLM_MODELS_FILE=str(tmp / "models.toml"),
        LLM_MODEL_PATH=str(tmp / "models"),
        LLM_MAX_CONCURRENT_REQUESTS="4",
    ).running() as srv:
        yield srv


def test_readiness_waits_for_every_listed_model_and_the_listing_says_where_each_came_from(multi_server):
    ready = requests.get(multi_server.url + "/health/ready", timeout=5).json()
    assert ready["models"] == [
        EMBEDDED,
        GEMMA,
        TINY,
        TINY_CACHED,
        SMOL_CACHED,
        CAPPED,
        TINY_BY_PATH,
        SMOL_LOCAL,
    ]
    models = listing(multi_server)
    device = requests.get(multi_server.url + "/api/llms", timeout=5).json()["device"]
    auto = "Q8_0" if device == "cpu" else None  # the in-situ quantization chosen for the device
    expected = {  # id: (origin, format, weights, in-situ quantization, context length)
        EMBEDDED: ("embedded", "gguf", "Q4_1", auto, 8192),
        GEMMA: ("catalog", "gguf", "Q4_K_M", auto, 32768),
        TINY: ("model_path", "safetensors", "auto", auto, 2048),
        TINY_CACHED: ("hf_cache", "safetensors", "auto", auto, 2048),
        SMOL_CACHED: ("hf_cache", "gguf", "Q4_1", auto, 8192),
        CAPPED: ("model_path", "safetensors", "auto", "Q4K", 64),
        TINY_BY_PATH: ("catalog", "safetensors", "auto", auto, 2048),
        SMOL_LOCAL: ("model_path", "gguf", "Q4_1", auto, 8192),
    }
    for model_id, (origin, fmt, weights, isq, context) in expected.items():
        model = models[model_id]
        assert model["state"] == "loaded" and model["error"] is None, model
        assert (model["source"]["origin"], model["format"]) == (origin, fmt), model_id
        assert model["quantization"] == {"weights": weights, "in_situ": isq}, model_id
        assert model["context_length"] == context, model_id
        assert model["device"] == device and model["load_seconds"] > 0 and model["loads"] == 1
    assert models[GEMMA]["alias"] == "gemma" and models[GEMMA]["engine"]["chat_template"] == "catalog"
    assert models[TINY_CACHED]["source"]["revision"] == CACHED_COMMIT
    assert models[SMOL_CACHED]["source"]["revision"] == SMOL_COMMIT
    assert models[CAPPED]["source"]["location"].endswith(TINY)
    assert models[CAPPED]["engine"]["max_context"] == 64


@pytest.mark.parametrize(
    "name",
    [EMBEDDED, "gemma", GEMMA, TINY, TINY_CACHED, SMOL_CACHED, "tiny-capped", TINY_BY_PATH, SMOL_LOCAL],
)
def test_every_source_generates(multi_server, name):
    response = chat(multi_server, name)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == name
    assert body["usage"]["completion_tokens"] > 0 and body["message"]["content"]


def _stream_text(server, model: str, prompt: str) -> tuple[str, float, float]:
    body = {"model": model, "prompt": prompt, "temperature": 0, "max_tokens": 24}
    response = post(server, "/api/generate/stream", body, stream=True)
    assert response.status_code == 200, response.text
    text, stamps = "", []
    for name, data in iter_events(response):
        if name == "token":
            text += data["delta"]
            stamps.append(time.monotonic())
    return text, stamps[0], stamps[-1]


def test_two_models_serve_interleaved_requests_with_their_own_output(multi_server):
    prompts = {EMBEDDED: "Name three colours.", "gemma": "The sky is"}
    alone = {m: _stream_text(multi_server, m, p)[0] for m, p in prompts.items()}
    order = [EMBEDDED, "gemma", EMBEDDED, "gemma"]
    with ThreadPoolExecutor(len(order)) as executor:
        results = list(executor.map(lambda m: _stream_text(multi_server, m, prompts[m]), order))
    for model, (text, _, _) in zip(order, results, strict=True):
        assert text == alone[model], model  # greedy: the same text alone and side by side
    # each model's busy span (its engine queues its own requests): the two spans overlap
    by_model = [(m, r) for m, r in zip(order, results, strict=True)]
    spans = {
        model: (min(r[1] for m, r in by_model if m == model), max(r[2] for m, r in by_model if m == model))
        for model in prompts
    }
    (smol_first, smol_last), (gemma_first, gemma_last) = spans[EMBEDDED], spans["gemma"]
    assert smol_first < gemma_last and gemma_first < smol_last  # both were generating at once


def test_a_catalog_context_cap_is_enforced(multi_server):
    long = post(multi_server, "/api/generate", {"model": CAPPED, "prompt": "x" * 100, "raw": True})
    assert long.status_code == 400
    assert long.json()["error"]["code"] == "context_length_exceeded"
    assert long.json()["error"]["details"]["context_length"] == 64
    short = post(
        multi_server, "/api/generate", {"model": CAPPED, "prompt": "hi", "raw": True, "max_tokens": 500}
    )
    assert short.status_code == 200, short.text
    body = short.json()
    assert body["finish_reason"] == "length"
    assert body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"] <= 64


# -- '*': loading on first request, and the residency bound ---------------------------------------
@pytest.fixture(scope="module")
def lazy_server(tmp_path_factory, model_files):
    tmp = tmp_path_factory.mktemp("lazy")
    for name, files in (("a", model_files.tiny), ("b", model_files.tiny_b), ("c", model_files.tiny)):
        shutil.copytree(files, tmp / "models" / "test" / f"tiny-{name}")
    (tmp / "models.yaml").write_text(
        f"models:\n  {GEMMA}:\n    path: {model_files.gemma}\n    chat_template: |\n"
        + "".join(f"      {line}\n" for line in GEMMA_TEMPLATE.splitlines())
    )
    with Server(
        tmp,
        LLM_ALLOWED_MODELS="*",
        LLM_MODELS_FILE=str(tmp / "models.yaml"),
        LLM_MODEL_PATH=str(tmp / "models"),
        LLM_MAX_LOADED_MODELS="2",
        LLM_MAX_CONCURRENT_REQUESTS="4",
    ).running() as srv:
        yield srv


def test_nothing_loads_before_a_request_under_star(lazy_server):
    assert requests.get(lazy_server.url + "/health/ready", timeout=5).status_code == 200
    assert listing(lazy_server)[GEMMA]["state"] in ("not loaded", "loaded")  # the catalog is listed


def test_concurrent_first_requests_load_the_model_once(lazy_server):
    assert listing(lazy_server)[GEMMA]["loads"] == 0
    start = threading.Barrier(2)

    def first_request(_: int) -> requests.Response:
        start.wait()
        return chat(lazy_server, GEMMA)

    with ThreadPoolExecutor(2) as executor:
        responses = list(executor.map(first_request, range(2)))
    assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
    assert listing(lazy_server)[GEMMA]["loads"] == 1
    assert lazy_server.log().count(f"model {GEMMA} loaded in") == 1


def test_the_least_recently_used_idle_model_is_unloaded_past_the_bound(lazy_server):
    a, b, c = (f"test/tiny-{n}" for n in "abc")
    for model in (a, b, a, c):  # bound 2: c pushes out b, the least recently used
        assert chat(lazy_server, model).status_code == 200
    models = listing(lazy_server)
    loaded = {m for m, info in models.items() if info["state"] == "loaded"}
    assert loaded == {a, c}
    assert models[b]["state"] == "not loaded" and models[b]["unloads"] >= 1
    assert metric(lazy_server, "llm_model_unloads_total", b) == models[b]["unloads"]
    loads = models[b]["loads"]
    assert chat(lazy_server, b).status_code == 200  # loads again, pushing out a
    models = listing(lazy_server)
    assert models[b]["loads"] == loads + 1
    assert metric(lazy_server, "llm_model_loads_total", b) == loads + 1
    assert {m for m, info in models.items() if info["state"] == "loaded"} == {b, c}


def test_a_model_found_nowhere_is_404_naming_every_place(lazy_server):
    response = chat(lazy_server, "test/absent")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "model_not_found"
    looked = " ".join(error["details"]["looked_in"])
    assert "LLM_MODEL_PATH" in looked and "models--test--absent" in looked and "HF_HUB_OFFLINE=1" in looked
    assert "test/absent" not in listing(lazy_server)


# -- the hub through a mirror (HF_ENDPOINT), the pull command, offline serving --------------------
@pytest.fixture(scope="module")
def mirror(model_files):
    with HubMirror({"mirror/tiny": model_files.tiny, "mirror/smol-gguf": model_files.smol}) as hub:
        yield hub


def test_a_model_only_the_mirror_has_is_downloaded_loaded_and_served(tmp_path, mirror):
    with Server(
        tmp_path, LLM_ALLOWED_MODELS="*", HF_HUB_OFFLINE="0", HF_ENDPOINT=mirror.url
    ).running() as server:
        for model, fmt in (("mirror/tiny", "safetensors"), ("mirror/smol-gguf", "gguf")):
            response = chat(server, model)
            assert response.status_code == 200, response.text
            info = listing(server)[model]
            assert (info["source"]["origin"], info["format"]) == ("hub", fmt)
            assert info["source"]["revision"] == mirror.commit(model)
            cached = tmp_path / "hf" / "hub" / ("models--" + model.replace("/", "--"))
            assert (cached / "refs" / "main").read_text() == mirror.commit(model)
            assert f"GET /api/models/{model}/revision/main" in mirror.requests
        missing = chat(server, "mirror/absent")
        assert missing.status_code == 404
        assert mirror.url in missing.json()["error"]["message"]


def run_cli(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        env=server_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_pull_prepares_a_cache_that_serves_offline_without_any_network(tmp_path, mirror):
    pulled = run_cli(tmp_path, "pull", "mirror/tiny", HF_HUB_OFFLINE="0", HF_ENDPOINT=mirror.url)
    assert pulled.returncode == 0, pulled.stderr
    assert mirror.commit("mirror/tiny") in pulled.stdout
    assert "100%" in pulled.stderr  # the progress bar
    models = json.loads(run_cli(tmp_path, "models", "--json").stdout)
    tiny = next(m for m in models if m["id"] == "mirror/tiny")
    assert (tiny["origin"], tiny["format"]) == ("hf_cache", "safetensors") and tiny["size_bytes"] > 0
    requests_before = len(mirror.requests)
    with Server(
        tmp_path, LLM_ALLOWED_MODELS="*", HF_HUB_OFFLINE="1", HF_ENDPOINT=mirror.url
    ).running() as server:
        assert chat(server, "mirror/tiny").status_code == 200
        assert listing(server)["mirror/tiny"]["source"]["origin"] == "hf_cache"
        absent = chat(server, "mirror/smol-gguf")  # on the mirror, never pulled
        assert absent.status_code == 404
        assert "HF_HUB_OFFLINE=1" in absent.json()["error"]["message"]
    assert len(mirror.requests) == requests_before  # offline: not one request


def test_pull_of_a_missing_model_fails_with_one_clear_line(tmp_path, mirror):
    result = run_cli(tmp_path, "pull", "mirror/absent", HF_HUB_OFFLINE="0", HF_ENDPOINT=mirror.url)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: Model 'mirror/absent'")
