"""API keys: the keys file's validation (one line naming file, entry and reason), digests, lookups,
fair slots between keys and token quotas."""

from __future__ import annotations

import hashlib
import threading

import pytest

from app.api.tenancy import TokenQuotas
from app.engine.faults import KeyShareUsed
from app.engine.limiter import SlotLimiter
from app.error_shapes import NATIVE
from app.errors import RateLimitedError
from app.fault_errors import fault_error
from app.keys_file import ApiKey, KeysError, digest, find, from_list, load
from app.settings import Settings, SettingsError

SECRET = "a-long-enough-secret-key"


def write(tmp_path, text: str, name: str = "keys.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_keys_file_with_plain_and_hashed_keys_and_a_policy(tmp_path):
    hashed = hashlib.sha256(b"another-long-secret-key").hexdigest()
    path = write(
        tmp_path,
        f"""
[keys.team-a]
key = "{SECRET}"
models = ["m1"]
max_concurrent = 2
tokens_per_minute = 100

[keys.team-b]
key = "sha256:{hashed}"
""",
    )
    keys = load(path)
    assert keys["team-a"].models == ("m1",) and keys["team-a"].max_concurrent == 2
    assert find(keys, SECRET).name == "team-a"
    assert find(keys, "another-long-secret-key").name == "team-b"
    assert find(keys, "wrong") is None
    assert keys["team-a"].digest == digest(SECRET)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[other]\n", "one table 'keys'"),
        ('[keys."bad name!"]\nkey = "' + SECRET + '"\n', "entry 'bad name!': the name must be"),
        ("[keys.a]\nmodels = ['m']\n", "entry 'a': key: Missing data for required field"),
        ('[keys.a]\nkey = "short"\n', "entry 'a': key: must be at least 16 characters"),
        ('[keys.a]\nkey = "sha256:abc"\n', "entry 'a': key: sha256: must be followed by 64 hex digits"),
        (f'[keys.a]\nkey = "{SECRET}"\nmax_concurrent = 0\n', "entry 'a': max_concurrent:"),
        (f'[keys.a]\nkey = "{SECRET}"\nrate = 1\n', "entry 'a': rate: unknown option"),
        (f'[keys.a]\nkey = "{SECRET}"\n[keys.b]\nkey = "{SECRET}"\n', "entry 'b': the same key as 'a'"),
    ],
)
def test_each_mistake_is_one_line_naming_file_entry_and_reason(tmp_path, text, reason):
    path = write(tmp_path, text)
    with pytest.raises(KeysError) as error:
        load(path)
    message = str(error.value)
    assert message.startswith(f"{path}: ") and reason in message and "\n" not in message
    assert SECRET not in message


def test_yaml_works_and_settings_check_the_models_and_never_show_a_key(tmp_path):
    path = write(tmp_path, f"keys:\n  a:\n    key: {SECRET}\n    models: [nope]\n", "keys.yaml")
    with pytest.raises(SettingsError) as error:
        Settings.from_env({"LLM_ALLOWED_MODELS": "m1", "LLM_API_KEYS_FILE": str(path)})
    assert "'a'" in str(error.value) and "nope" in str(error.value) and SECRET not in str(error.value)
    with pytest.raises(SettingsError, match="both set"):
        Settings.from_env(
            {"LLM_ALLOWED_MODELS": "m1", "LLM_API_KEYS_FILE": str(path), "LLM_API_KEYS": SECRET}
        )


def test_a_listed_key_is_named_by_its_digest_whatever_its_place_in_the_list():
    """What a key owns in the store goes by its name: reordering or shortening the list keeps each
    key's name (and objects) its own. The name holds no part of the key itself."""
    other = "another-long-secret-key"
    keys = from_list(f"{SECRET}, {other}")
    name = find(keys, SECRET).name
    assert name == "key-" + hashlib.sha256(SECRET.encode()).hexdigest()[:12] and SECRET not in name
    assert find(from_list(f"{other}, {SECRET}"), SECRET).name == name
    assert find(from_list(SECRET), SECRET).name == name
    digest_form = "sha256:" + hashlib.sha256(SECRET.encode()).hexdigest()
    assert find(from_list(digest_form), SECRET).name == name
    with pytest.raises(KeysError, match="key 2 is the same key"):
        from_list(f"{SECRET}, {SECRET}")
    with pytest.raises(KeysError) as error:
        from_list("tiny")
    assert "tiny" not in str(error.value)


def test_a_freed_slot_goes_to_the_key_with_the_fewest_running():
    limiter = SlotLimiter(limit=1, timeout=30)
    assert limiter.acquire(1, threading.Event(), "a")
    order: list[str] = []

    def wait(key: str) -> None:
        if limiter.acquire(30, threading.Event(), key):
            order.append(key)

    threads = []
    for key in ("a", "a", "b"):  # a floods first, b arrives last
        thread = threading.Thread(target=wait, args=(key,))
        thread.start()
        threads.append(thread)
        while limiter.waiting < len(threads):
            threading.Event().wait(0.001)
    limiter.release(0.1, "a")  # a ran one; b has none running: b goes next
    while not order:
        threading.Event().wait(0.001)
    assert order == ["b"]
    limiter.release(0.1, "b")
    limiter.release(0.1, "a")  # the remaining a's, in arrival order
    for thread in threads:
        thread.join(timeout=30)
    assert order == ["b", "a", "a"]


def test_a_key_past_its_share_is_rate_limited():
    limiter = SlotLimiter(limit=4, timeout=30)
    assert limiter.acquire(1, threading.Event(), "a", share=1)
    with pytest.raises(KeyShareUsed) as error:
        limiter.acquire(1, threading.Event(), "a", share=1)
    refused = fault_error(error.value, NATIVE)
    assert refused.status == 429 and int(refused.headers["Retry-After"]) >= 1
    assert limiter.acquire(1, threading.Event(), "b", share=1)


def test_token_quotas_refuse_past_the_limit_and_recover_after_the_window(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("app.api.tenancy.time.monotonic", lambda: clock[0])
    quotas = TokenQuotas(minute_seconds=10)
    key = ApiKey("a", digest(SECRET), tokens_per_minute=100)
    quotas.check(key)
    quotas.record(key, 60)
    clock[0] += 4
    quotas.record(key, 50)
    assert quotas.headers(key)["X-RateLimit-Remaining-Tokens"] == "0"
    with pytest.raises(RateLimitedError) as error:
        quotas.check(key)
    assert error.value.headers["Retry-After"] == "6"  # when the first 60 leave the window
    assert error.value.headers["X-RateLimit-Limit-Tokens"] == "100"
    clock[0] += 6.5
    quotas.check(key)
    assert quotas.headers(key)["X-RateLimit-Remaining-Tokens"] == "50"
