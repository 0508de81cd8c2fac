"""The admin scope and the route registry, and model management on the fake engine: residency,
load, unload, delete, a pull through a hub mirror on loopback, Ollama's pull and delete, keep_alive 0."""

from __future__ import annotations

import json

import pytest

from app.api import access
from app.settings import Settings, SettingsError
from tests.helpers import FakeRunner
from tests.hub_mirror import HubMirror
from tests.unit.conftest import FAKE_MODEL

USER_KEY, ADMIN_KEY = "a-long-enough-user-key", "a-long-enough-admin-key"
KEYS = {"LLM_API_KEYS": USER_KEY, "LLM_ADMIN_API_KEYS": ADMIN_KEY}
OPEN = {"LLM_ADMIN_OPEN": "true"}
ADMIN_ROUTES = {
    "GET /api/admin/models",
    "POST /api/admin/models/pull",
    "POST /api/admin/models/load",
    "POST /api/admin/models/unload",
    "DELETE /api/admin/models/<path:model_id>",
    "POST /ollama/api/pull",
    "DELETE /ollama/api/delete",
}
PUBLIC_ROUTES = {
    "GET /health/live",
    "GET /health/ready",
    "GET /",
    "GET /playground/<path:filename>",
    "GET /metrics",
    "GET /openapi.json",
    "GET /swagger-ui",
    "GET /swagger-ui/assets/<path:filename>",
}


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def lines(response) -> list[dict]:
    return [json.loads(line) for line in response.get_data(as_text=True).splitlines()]


# -- the registry ---------------------------------------------------------------------------------
def test_every_route_is_public_keyed_or_admin_and_only_the_listed_ones_are_not_keyed(make_app):
    app = make_app(**KEYS)
    table = access.registry(app, app.extensions["llm"].settings)
    assert set(table.values()) == {access.PUBLIC, access.KEYED, access.ADMIN}
    assert {route for route, level in table.items() if level == access.ADMIN} == ADMIN_ROUTES
    assert {route for route, level in table.items() if level == access.PUBLIC} == PUBLIC_ROUTES
    assert table["POST /api/chat"] == table["GET /ollama/api/tags"] == access.KEYED


def test_metrics_and_docs_are_keyed_when_their_settings_close_them(make_app):
    app = make_app(LLM_METRICS_PUBLIC="false", LLM_DOCS_PUBLIC="false", **KEYS)
    table = access.registry(app, app.extensions["llm"].settings)
    public = {route for route, level in table.items() if level == access.PUBLIC}
    assert public == PUBLIC_ROUTES - {"GET /metrics", "GET /openapi.json", "GET /swagger-ui"} - {
        "GET /swagger-ui/assets/<path:filename>"
    }
    client = app.test_client()
    assert client.get("/metrics").status_code == 401 and client.get("/health/live").status_code == 200


# -- who may call an admin route --------------------------------------------------------------------
def test_no_key_is_401_a_user_key_403_in_the_family_shape_and_an_admin_key_passes(make_app):
    client = make_app(**KEYS).test_client()
    assert client.get("/api/admin/models").status_code == 401
    refused = client.get("/api/admin/models", headers=bearer(USER_KEY))
    assert refused.status_code == 403
    assert refused.json["error"]["code"] == "admin_required" and "'key-" in refused.json["error"]["message"]
    assert client.get("/api/admin/models", headers=bearer(ADMIN_KEY)).status_code == 200
    ollama = client.post("/ollama/api/pull", json={"model": "org/x"}, headers=bearer(USER_KEY))
    assert ollama.status_code == 403 and set(ollama.json) == {"error"}
    # the admin key is a key like any other on every other route
    assert client.post("/api/generate", json={"prompt": "Hi"}, headers=bearer(ADMIN_KEY)).status_code == 200
    assert client.get("/api/llms", headers=bearer(USER_KEY)).status_code == 200


def test_without_keys_admin_routes_are_closed_unless_llm_admin_open(make_app):
    closed = make_app().test_client()
    refused = closed.get("/api/admin/models")
    assert refused.status_code == 403 and "LLM_ADMIN_OPEN" in refused.json["error"]["message"]
    deleted = closed.delete("/ollama/api/delete", json={"model": "org/x"})
    assert deleted.status_code == 403 and "LLM_ADMIN_OPEN" in deleted.json["error"]
    assert closed.post("/api/generate", json={"prompt": "Hi"}).status_code == 200  # the rest stays open
    assert make_app(**OPEN).test_client().get("/api/admin/models").status_code == 200


def test_a_keys_file_marks_admin_keys_and_llm_admin_open_is_refused_with_keys(tmp_path):
    path = tmp_path / "keys.toml"
    path.write_text(f'[keys.ops]\nkey = "{ADMIN_KEY}"\nadmin = true\n\n[keys.app]\nkey = "{USER_KEY}"\n')
    env = {"LLM_ALLOWED_MODELS": FAKE_MODEL, "LLM_API_KEYS_FILE": str(path)}
    keys = Settings.from_env(env).api_keys
    assert keys["ops"].admin and not keys["app"].admin
    with pytest.raises(SettingsError, match="LLM_ADMIN_OPEN=true is invalid with API keys"):
        Settings.from_env({**env, **OPEN})
    same = r"LLM_ADMIN_API_KEYS: entry 'admin-[0-9a-f]{12}': the same key as 'ops'"
    with pytest.raises(SettingsError, match=same):
        Settings.from_env({**env, "LLM_ADMIN_API_KEYS": ADMIN_KEY})
    path.write_text(f'[keys.ops]\nkey = "{ADMIN_KEY}"\nadmin = "yes"\n')
    with pytest.raises(SettingsError, match="entry 'ops': admin"):
        Settings.from_env(env)


# -- load, unload, residency, delete ----------------------------------------------------------------
def test_unload_then_load_again_and_residency_says_so(make_app):
    client = make_app(**OPEN).test_client()
    resident = client.get("/api/admin/models").json
    assert resident["loaded"] == 1 and resident["models"][0]["id"] == FAKE_MODEL
    assert resident["models"][0]["on_disk"]
    unloaded = client.post("/api/admin/models/unload", json={"model": FAKE_MODEL}).json
    assert unloaded == {"model": FAKE_MODEL, "unloaded": True, "state": "not loaded"}
    assert client.post("/api/admin/models/unload", json={"model": FAKE_MODEL}).json["unloaded"] is False
    assert client.get("/api/admin/models").json["loaded"] == 0
    loaded = client.post("/api/admin/models/load", json={"model": FAKE_MODEL}).json
    assert loaded["state"] == "loaded" and loaded["loads"] == 2 and loaded["unloads"] == 1
    assert client.post("/api/generate", json={"prompt": "Hi"}).json["text"] == "Hello!"


def test_unload_of_a_model_in_use_is_409_and_it_stays(make_app):
    app = make_app(**OPEN)
    pool = app.extensions["llm"].pool
    held = pool.acquire(FAKE_MODEL)
    refused = app.test_client().post("/api/admin/models/unload", json={"model": FAKE_MODEL})
    assert refused.status_code == 409 and refused.json["error"]["code"] == "conflict"
    assert "1 request(s) are using it" in refused.json["error"]["message"]
    pool.release(held)
    assert pool.entry(FAKE_MODEL).state == "loaded"


def test_a_model_outside_the_allowed_list_is_404_and_bad_bodies_get_the_family_shape(make_app):
    client = make_app(**OPEN).test_client()
    assert client.post("/api/admin/models/load", json={"model": "org/other"}).status_code == 404
    assert client.post("/api/admin/models/pull", json={}).status_code == 422
    bad_revision = client.post("/api/admin/models/pull", json={"model": FAKE_MODEL, "revision": "../x"})
    assert bad_revision.status_code == 422 and "revision" in bad_revision.json["error"]["message"]
    bad = client.post("/ollama/api/pull", json={"model": 5})
    assert bad.status_code == 400 and set(bad.json) == {"error"}
    assert client.post("/ollama/api/pull", json={}).status_code == 400


def cached(tmp_path, repo: str):
    folder = tmp_path / "hf" / "hub" / ("models--" + repo.replace("/", "--"))
    snapshot = folder / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "model.gguf").write_bytes(b"GGUF")
    return folder


def test_delete_removes_a_cached_model_and_refuses_a_loaded_one(make_app, tmp_path):
    client = make_app(LLM_ALLOWED_MODELS="*", **OPEN).test_client()
    folder = cached(tmp_path, "org/cached")
    assert "org/cached" in {m["id"] for m in client.get("/api/admin/models").json["models"]}
    deleted = client.delete("/api/admin/models/org/cached")
    assert deleted.status_code == 200 and deleted.json["size_bytes"] == 4 and not folder.exists()
    missing = client.delete("/api/admin/models/org/cached")
    assert missing.status_code == 404 and missing.json["error"]["code"] == "model_not_found"
    cached(tmp_path, "org/loaded")
    assert client.post("/api/admin/models/load", json={"model": "org/loaded"}).status_code == 200
    busy = client.delete("/api/admin/models/org/loaded")
    assert busy.status_code == 409 and "unload it first" in busy.json["error"]["message"]
    assert client.delete("/api/admin/models/..").status_code in (400, 404)


def test_ollama_delete_answers_an_empty_200_then_404(make_app, tmp_path):
    client = make_app(LLM_ALLOWED_MODELS="*", **OPEN).test_client()
    cached(tmp_path, "org/gone")
    deleted = client.delete("/ollama/api/delete", json={"model": "org/gone:latest"})
    assert deleted.status_code == 200 and deleted.get_data() == b""
    missing = client.delete("/ollama/api/delete", json={"model": "org/gone"})
    assert missing.status_code == 404 and "org/gone" in missing.json["error"]


# -- pull through a mirror on loopback --------------------------------------------------------------
@pytest.fixture
def mirror(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "tiny.Q4_0.gguf").write_bytes(b"GGUF" + bytes(200_000))
    with HubMirror({"mirror/tiny": repo}) as hub:
        yield hub


def test_a_pull_streams_its_progress_and_lands_in_the_cache(make_app, mirror, tmp_path):
    env = {"LLM_ALLOWED_MODELS": "*", "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": mirror.url, **OPEN}
    client = make_app(**env).test_client()
    response = client.post("/api/admin/models/pull", json={"model": "mirror/tiny"})
    assert response.status_code == 200 and response.mimetype == "application/x-ndjson"
    steps = lines(response)
    assert steps[0]["status"] == "pulling manifest" and steps[-1]["status"] == "success"
    assert steps[-2] == {**steps[-2], "status": "downloading", "completed": 200_004, "total": 200_004}
    assert steps[-1]["files"] == ["tiny.Q4_0.gguf"] and steps[-1]["revision"] == mirror.commit("mirror/tiny")
    assert (tmp_path / "hf" / "hub" / "models--mirror--tiny" / "refs" / "main").is_file()
    ollama = lines(client.post("/ollama/api/pull", json={"model": "mirror/tiny"}))
    assert ollama[0] == {"status": "pulling manifest"} and ollama[-1] == {"status": "success"}
    assert ollama[-2]["status"] == "downloading mirror/tiny" and ollama[-2]["completed"] == 200_004
    whole = client.post("/ollama/api/pull", json={"model": "mirror/tiny", "stream": False})
    assert whole.json == {"status": "success"}
    absent = client.post("/ollama/api/pull", json={"model": "mirror/absent"})
    assert absent.status_code == 404 and "mirror/absent" in absent.json["error"]


def test_a_pull_is_refused_offline_and_for_a_name_that_is_no_hub_id(make_app):
    client = make_app(LLM_ALLOWED_MODELS="*", HF_HUB_OFFLINE="1", **OPEN).test_client()
    offline = client.post("/api/admin/models/pull", json={"model": "org/x"})
    assert offline.status_code == 409 and "HF_HUB_OFFLINE" in offline.json["error"]["message"]
    online = make_app(LLM_ALLOWED_MODELS="*", HF_HUB_OFFLINE="0", **OPEN).test_client()
    assert online.post("/api/admin/models/pull", json={"model": "no-slash"}).status_code == 400


# -- keep_alive 0 -----------------------------------------------------------------------------------
def test_keep_alive_zero_unloads_after_the_answer_and_needs_the_admin_scope(make_app):
    body = {"model": FAKE_MODEL, "messages": [{"role": "user", "content": "Hi"}], "keep_alive": 0}
    closed = make_app().test_client()
    refused = closed.post("/ollama/api/chat", json=body)
    assert refused.status_code == 403 and "keep_alive" in refused.json["error"]
    app = make_app(runner=FakeRunner(), **OPEN)
    client = app.test_client()
    entry = app.extensions["llm"].pool.entry(FAKE_MODEL)
    answer = client.post("/ollama/api/chat", json={**body, "stream": False})
    assert answer.json["message"]["content"] == "Hello!" and entry.state == "loaded"
    answer.close()  # as the server does once the answer is sent
    assert entry.state == "not loaded"
    streamed = client.post("/ollama/api/chat", json={**body, "keep_alive": "0s"})
    assert lines(streamed)[-1]["done"]
    streamed.close()
    assert entry.state == "not loaded" and entry.unloads == 2
    assert client.post("/ollama/api/chat", json={**body, "keep_alive": "5m"}).status_code == 200
    assert entry.state == "loaded"
    stop = client.post("/ollama/api/generate", json={"model": FAKE_MODEL, "keep_alive": 0}).json
    assert stop["done_reason"] == "unload" and entry.state == "not loaded"
