"""API keys, per-key policy and fair sharing on the real server (keys from a TOML file)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
import requests

from tests.helpers import EMBEDDED, Server, copy_without_chat_template, metric, samples, wait_for
from tests.otlp_receiver import attributes

ADMIN, LIMITED, ONE = "admin-key-0123456789", "limited-key-0123456789", "one-at-a-time-key-0123"
QUOTA, FLOOD, LATE = "quota-key-0123456789", "flood-key-0123456789", "late-key-0123456789"
SECRETS = (ADMIN, LIMITED, ONE, QUOTA, FLOOD, LATE)
OTHER = "local/other"
KEYS = f"""
[keys.admin]
key = "{ADMIN}"

[keys.limited]
key = "{LIMITED}"
models = ["{EMBEDDED}"]
max_tokens_limit = 16

[keys.one]
key = "{ONE}"
max_concurrent = 1

[keys.quota]
key = "{QUOTA}"
tokens_per_minute = 60

[keys.flood]
key = "{FLOOD}"

[keys.late]
key = "{LATE}"
"""
CHAT = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "temperature": 0}
ROUTES = [
    ("GET", "/api/llms", None),
    ("POST", "/api/generate", {"prompt": "Hi", "max_tokens": 2}),
    ("POST", "/api/chat", CHAT),
    ("POST", "/api/chat/stream", CHAT),
    ("GET", "/v1/models", None),
    ("POST", "/v1/chat/completions", {"model": EMBEDDED, **CHAT}),
    ("POST", "/v1/completions", {"model": EMBEDDED, "prompt": "Hi", "max_tokens": 2}),
]


@pytest.fixture(scope="module")
def keyed(tmp_path_factory, receiver):
    tmp = tmp_path_factory.mktemp("keys")
    (tmp / "keys.toml").write_text(KEYS)
    copy_without_chat_template(tmp / "models" / OTHER / "model.gguf")
    with Server(
        tmp,
        LLM_ALLOWED_MODELS=f"{EMBEDDED},{OTHER}",
        LLM_MODEL_PATH=str(tmp / "models"),
        LLM_API_KEYS_FILE=str(tmp / "keys.toml"),
        LLM_MAX_CONCURRENT_REQUESTS="2",
        LLM_MAX_QUEUED_REQUESTS="50",
        LLM_QUEUE_TIMEOUT_SECONDS="300",
        LLM_RATE_WINDOW_SECONDS="3",
        LLM_DOCS_PUBLIC="false",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{receiver.port}",
        OTEL_BSP_SCHEDULE_DELAY="100",
        LOG_FORMAT="json",
    ).running() as srv:
        yield srv


def call(server, method: str, path: str, body: dict | None, **headers: str) -> requests.Response:
    return requests.request(method, server.url + path, json=body, headers=headers, timeout=300)


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_every_route_needs_a_key_in_either_header_form(keyed, method, path, body):
    for headers in ({}, {"Authorization": "Bearer wrong-key-0123456789"}, {"X-API-Key": "wrong"}):
        refused = call(keyed, method, path, body, **headers)
        assert refused.status_code == 401, refused.text
        assert refused.headers["WWW-Authenticate"] == "Bearer"
        assert "wrong" not in refused.text
        error = refused.json()["error"]
        assert error["code"] == "invalid_api_key"
        if path.startswith("/v1/"):
            assert error["type"] == "invalid_request_error"  # OpenAI's shape
    for headers in ({"Authorization": f"Bearer {ADMIN}"}, {"X-API-Key": ADMIN}):
        assert call(keyed, method, path, body, **headers).status_code == 200


def test_probes_and_metrics_stay_open_and_docs_follow_their_setting(keyed):
    for path in ("/health/live", "/health/ready", "/metrics"):
        assert requests.get(keyed.url + path, timeout=10).status_code == 200
    assert requests.get(keyed.url + "/openapi.json", timeout=10).status_code == 401  # LLM_DOCS_PUBLIC=false
    document = requests.get(keyed.url + "/openapi.json", headers={"X-API-Key": ADMIN}, timeout=10).json()
    assert set(document["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    assert document["security"] == [{"bearer": []}, {"apiKey": []}]
    assert document["paths"]["/health/live"]["get"]["security"] == []
    assert requests.get(keyed.url + "/health/live", timeout=10).headers["X-Content-Type-Options"] == "nosniff"


def test_the_openai_client_authenticates_with_its_api_key(keyed):
    with openai.OpenAI(base_url=keyed.url + "/v1", api_key=ADMIN, max_retries=0) as client:
        assert [m.id for m in client.models.list()] == [EMBEDDED, OTHER]
        reply = client.chat.completions.create(model=EMBEDDED, messages=CHAT["messages"], max_tokens=3)
        assert reply.usage.completion_tokens > 0
    wrong = openai.OpenAI(base_url=keyed.url + "/v1", api_key="wrong", max_retries=0)
    with wrong, pytest.raises(openai.AuthenticationError):
        wrong.models.list()


def test_a_key_sees_and_uses_only_its_models_and_its_token_limit(keyed):
    limited = {"X-API-Key": LIMITED}
    listing = call(keyed, "GET", "/api/llms", None, **limited).json()
    assert [m["id"] for m in listing["models"]] == [EMBEDDED]
    models = call(keyed, "GET", "/v1/models", None, **limited).json()
    assert [m["id"] for m in models["data"]] == [EMBEDDED]
    forbidden = call(keyed, "POST", "/api/generate", {"prompt": "Hi", "model": OTHER, "raw": True}, **limited)
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "model_not_allowed"
    assert call(keyed, "GET", f"/v1/models/{OTHER}", None, **limited).status_code == 404
    too_many = call(keyed, "POST", "/api/chat", {**CHAT, "max_tokens": 17}, **limited)
    assert too_many.status_code == 422 and "limited" in too_many.json()["error"]["message"]
    allowed = call(keyed, "POST", "/api/chat", CHAT, **limited)  # no model given: its first model
    assert allowed.status_code == 200 and allowed.json()["model"] == EMBEDDED


def test_a_key_over_its_share_of_the_slots_gets_429(keyed):
    with requests.post(
        keyed.url + "/api/chat/stream",
        json={**CHAT, "max_tokens": 200, "messages": [{"role": "user", "content": "Write a long essay."}]},
        headers={"X-API-Key": ONE},
        stream=True,
        timeout=300,
    ) as held:
        lines = held.iter_lines()
        assert next(lines).startswith(b"event: token")  # the key's one slot is in use
        refused = call(keyed, "POST", "/api/chat", CHAT, **{"X-API-Key": ONE})
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["error"]["code"] == "rate_limited"
        assert call(keyed, "POST", "/api/chat", CHAT, **{"X-API-Key": ADMIN}).status_code == 200


def test_a_token_quota_refuses_with_the_headers_then_recovers(keyed):
    quota = {"X-API-Key": QUOTA}
    body = {**CHAT, "max_tokens": 16}
    statuses = []
    for _ in range(10):  # each request uses about 45 tokens; the quota is 60 a (3 s) minute
        answer = call(keyed, "POST", "/api/chat", body, **quota)
        statuses.append(answer.status_code)
        if answer.status_code == 429:
            break
        assert answer.headers["X-RateLimit-Limit-Tokens"] == "60"
    assert statuses[-1] == 429, statuses
    assert answer.json()["error"]["code"] == "rate_limited"
    assert answer.headers["X-RateLimit-Remaining-Tokens"] == "0"
    assert 1 <= int(answer.headers["Retry-After"]) <= 3
    assert answer.headers["X-RateLimit-Reset-Tokens"].endswith("s")
    recovered = wait_for(
        lambda: (r := call(keyed, "POST", "/api/chat", body, **quota)).status_code == 200 and r,
        "the quota's window to pass",
        deadline=30,
        interval=0.5,
    )
    assert int(recovered.headers["X-RateLimit-Remaining-Tokens"]) < 60


def test_one_key_flooding_the_slots_cannot_starve_another(keyed):
    finished: list[tuple[str, float]] = []
    body = {**CHAT, "max_tokens": 8}

    def run(key: str, name: str) -> None:
        answer = call(keyed, "POST", "/api/chat", body, **{"X-API-Key": key})
        assert answer.status_code == 200, answer.text
        finished.append((name, answer.json()["timings"]["queue_seconds"]))

    with ThreadPoolExecutor(21) as pool:
        floods = [pool.submit(run, FLOOD, "flood") for _ in range(20)]
        wait_for(lambda: metric(samples(keyed), "llm_requests_waiting") >= 15, "the flood queued")
        late = pool.submit(run, LATE, "late")
        for future in [*floods, late]:
            future.result()
    names = [name for name, _ in finished]
    late_wait = dict(finished)["late"]
    flood_waits = sorted(wait for name, wait in finished if name == "flood")
    # two slots: the late key gets the first slot that frees, not the one after the flood's queue
    assert names.index("late") <= 3, names
    print(
        f"\nfair sharing: the late key waited {late_wait:.2f}s for a slot; the flood's last request "
        f"waited {flood_waits[-1]:.2f}s (first-come-first-served would have put the late key there)"
    )


def test_keys_never_reach_logs_spans_or_metrics_but_their_names_do(keyed, receiver):
    assert call(keyed, "POST", "/api/chat", CHAT, **{"Authorization": f"Bearer {ADMIN}"}).status_code == 200
    spans = receiver.wait_for(
        lambda spans: [s for _, s in spans if attributes(s.attributes).get("llm.api_key.name") == "admin"]
    )
    assert spans
    dumped = "".join(str(span) for _, span in receiver.spans)
    text = requests.get(keyed.url + "/metrics", timeout=10).text
    log = keyed.log_path.read_text()
    for secret in SECRETS:
        assert secret not in dumped and secret not in text and secret not in log
    assert 'key="admin"' in text and ('"api_key": "admin"' in log or '"api_key":"admin"' in log)
    assert metric(samples(keyed), "llm_requests_total", key="admin", outcome="success") >= 1
