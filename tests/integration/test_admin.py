"""Model management over HTTP on the real gunicorn and engine: the admin scope per key, a pull through
the tests' hub mirror with its progress lines, unload and load again, Ollama's pull and delete with the
official client, and keep_alive 0."""

from __future__ import annotations

import json

import ollama
import pytest
import requests

from app.engine.catalog import embedded_model_file
from tests.helpers import EMBEDDED, Server, wait_for
from tests.hub_mirror import HubMirror
from tests.tiny_models import build_tiny_llama

USER_KEY, ADMIN_KEY = "a-long-enough-user-key", "a-long-enough-admin-key"
SMOL, TINY = "mirror/smol-gguf", "mirror/tiny"


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


ADMIN = bearer(ADMIN_KEY)


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    root = tmp_path_factory.mktemp("admin-mirror")
    smol = root / "smol"
    smol.mkdir()
    (smol / embedded_model_file().name).symlink_to(embedded_model_file())
    with HubMirror({SMOL: smol, TINY: build_tiny_llama(root / "tiny")}) as hub:
        yield hub


@pytest.fixture(scope="module")
def server(tmp_path_factory, mirror):
    """Any model, loaded on first use; a user key and an admin key; the hub is the mirror."""
    tmp = tmp_path_factory.mktemp("admin")
    with Server(
        tmp,
        LLM_ALLOWED_MODELS="*",
        LLM_API_KEYS=USER_KEY,
        LLM_ADMIN_API_KEYS=ADMIN_KEY,
        HF_HUB_OFFLINE="0",
        HF_ENDPOINT=mirror.url,
    ).running() as srv:
        srv.tmp = tmp
        yield srv


@pytest.fixture
def ollama_client(server):
    """Official ollama clients for the server (by key), their connection pools closed at the end."""
    made = []

    def make(key: str) -> ollama.Client:
        made.append(ollama.Client(host=server.url + "/ollama", headers=bearer(key)))
        return made[-1]

    yield make
    for client in made:
        client._client.close()


def chat(server, model: str) -> requests.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
    return requests.post(server.url + "/api/chat", json=body, headers=ADMIN, timeout=300)


def admin(server, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(
        method, server.url + "/api/admin/models" + path, headers=ADMIN, timeout=300, **kwargs
    )


def residency(server) -> dict[str, dict]:
    return {m["id"]: m for m in admin(server, "GET", "").json()["models"]}


def test_no_key_is_401_a_user_key_403_and_the_admin_key_200(server):
    url = server.url + "/api/admin/models"
    assert requests.get(url, timeout=10).status_code == 401
    refused = requests.get(url, headers=bearer(USER_KEY), timeout=10)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_required"
    assert requests.get(url, headers=ADMIN, timeout=10).status_code == 200
    pull = requests.post(
        server.url + "/ollama/api/pull", json={"model": TINY}, headers=bearer(USER_KEY), timeout=10
    )
    assert pull.status_code == 403 and set(pull.json()) == {"error"}
    assert requests.get(server.url + "/api/llms", headers=bearer(USER_KEY), timeout=10).status_code == 200


def test_a_pull_through_the_mirror_streams_its_progress_and_the_model_then_serves(server, mirror):
    with admin(server, "POST", "/pull", json={"model": SMOL}, stream=True) as response:
        assert response.status_code == 200 and response.headers["Content-Type"] == "application/x-ndjson"
        steps = [json.loads(line) for line in response.iter_lines() if line]
    assert steps[0]["status"] == "pulling manifest" and steps[-1]["status"] == "success"
    downloading = [step for step in steps if step["status"] == "downloading"]
    size = embedded_model_file().stat().st_size
    assert downloading[-1]["completed"] == downloading[-1]["total"] == size
    completed = [step["completed"] for step in downloading]
    assert completed == sorted(completed)
    assert steps[-1]["revision"] == mirror.commit(SMOL) and steps[-1]["files"] == [embedded_model_file().name]
    on_disk = residency(server)[SMOL]
    assert on_disk["on_disk"] and on_disk["origin"] == "hf_cache" and on_disk["state"] == "not loaded"
    loaded = admin(server, "POST", "/load", json={"model": SMOL})
    assert loaded.status_code == 200 and loaded.json()["source"]["origin"] == "hf_cache"
    assert chat(server, SMOL).status_code == 200


def test_unload_then_load_again_and_the_model_answers(server):
    assert chat(server, EMBEDDED).status_code == 200
    loads = residency(server)[EMBEDDED]["loads"]
    unloaded = admin(server, "POST", "/unload", json={"model": EMBEDDED})
    assert unloaded.json() == {"model": EMBEDDED, "unloaded": True, "state": "not loaded"}
    assert residency(server)[EMBEDDED]["state"] == "not loaded"
    loaded = admin(server, "POST", "/load", json={"model": EMBEDDED})
    assert loaded.status_code == 200 and loaded.json()["state"] == "loaded"
    assert residency(server)[EMBEDDED]["loads"] == loads + 1
    answer = chat(server, EMBEDDED)
    assert answer.status_code == 200 and answer.json()["message"]["content"]


def test_the_ollama_client_pulls_and_deletes_with_an_admin_key(server, ollama_client):
    client = ollama_client(ADMIN_KEY)
    statuses = [progress.status for progress in client.pull(TINY, stream=True)]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
    assert any(status == f"downloading {TINY}" for status in statuses)
    assert client.pull(TINY).status == "success"
    assert residency(server)[TINY]["on_disk"]
    assert client.delete(TINY).status == "success"
    assert not residency(server).get(TINY, {}).get("on_disk")
    with pytest.raises(ollama.ResponseError) as missing:
        client.delete(TINY)
    assert missing.value.status_code == 404
    user = ollama_client(USER_KEY)
    with pytest.raises(ollama.ResponseError) as refused:
        user.pull(TINY)
    assert refused.value.status_code == 403


def test_keep_alive_zero_unloads_the_model_after_the_answer(server, ollama_client):
    client = ollama_client(ADMIN_KEY)
    answer = client.chat(model=EMBEDDED, messages=[{"role": "user", "content": "Hi"}], keep_alive=0)
    assert answer.message.content
    wait_for(lambda: residency(server)[EMBEDDED]["state"] == "not loaded", "the model unloaded")
    assert f"{EMBEDDED}:latest" not in {m.model for m in client.ps().models}
