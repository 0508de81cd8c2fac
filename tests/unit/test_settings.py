"""Settings: defaults, parsing, and one-line errors naming the variable, the value and the rule."""

from __future__ import annotations

import pytest

from app.settings import Settings, SettingsError

BASE = {"LLM_ALLOWED_MODELS": "org/a, org/b"}


def test_defaults_match_the_documented_table():
    s = Settings.from_env(BASE)
    assert s.allowed_models == ("org/a", "org/b")
    assert not s.allow_any_model
    assert (s.hostname, s.port, s.bind) == ("0.0.0.0", 8091, "0.0.0.0:8091")
    assert s.cors_allowed_origins == ("*",)
    assert (s.default_temperature, s.default_top_p) == (0.7, 0.9)
    assert (s.default_max_tokens, s.max_tokens_limit, s.max_concurrent_requests) == (512, 4096, 10)
    assert (s.service_name, s.otlp_endpoint) == ("llm-inference-api", "http://localhost:4317")
    assert (s.log_format, s.ssl_enabled) == ("json", False)


def test_star_allows_any_model():
    s = Settings.from_env({"LLM_ALLOWED_MODELS": "*"})
    assert s.allow_any_model and s.allowed_models == ()


def test_values_are_typed():
    s = Settings.from_env(
        {
            **BASE,
            "LLM_INFERENCE_PORT": "9000",
            "LLM_DEFAULT_TEMPERATURE": "0",
            "CORS_ALLOWED_ORIGINS": "https://a.example, https://b.example",
            "SERVER_SSL_ENABLED": "false",
            "LOG_FORMAT": "PRETTY",
            "LLM_MODEL_PATH": "/models",
        }
    )
    assert s.port == 9000 and s.default_temperature == 0.0
    assert s.cors_allowed_origins == ("https://a.example", "https://b.example")
    assert s.log_format == "pretty" and str(s.model_path) == "/models"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "LLM_ALLOWED_MODELS is unset"),
        ({"LLM_ALLOWED_MODELS": " , "}, "LLM_ALLOWED_MODELS=',' is invalid"),
        (
            {**BASE, "LLM_DEFAULT_TEMPERATURE": "3"},
            "LLM_DEFAULT_TEMPERATURE='3' is invalid: allowed is a number from 0 to 2",
        ),
        (
            {**BASE, "LLM_DEFAULT_TOP_P": "1.5"},
            "LLM_DEFAULT_TOP_P='1.5' is invalid: allowed is a number from 0 to 1",
        ),
        (
            {**BASE, "LLM_INFERENCE_PORT": "abc"},
            "LLM_INFERENCE_PORT='abc' is invalid: allowed is an integer from 1 to 65535",
        ),
        ({**BASE, "LLM_INFERENCE_PORT": "70000"}, "LLM_INFERENCE_PORT='70000' is invalid"),
        ({**BASE, "LLM_MAX_CONCURRENT_REQUESTS": "0"}, "LLM_MAX_CONCURRENT_REQUESTS='0' is invalid"),
        (
            {**BASE, "LLM_DEFAULT_MAX_TOKENS": "5000"},
            "LLM_DEFAULT_MAX_TOKENS=5000 is invalid: allowed is at most LLM_MAX_TOKENS_LIMIT (4096)",
        ),
        ({**BASE, "LOG_FORMAT": "xml"}, "LOG_FORMAT='xml' is invalid: allowed is one of json, pretty"),
        (
            {**BASE, "SERVER_SSL_ENABLED": "maybe"},
            "SERVER_SSL_ENABLED='maybe' is invalid: allowed is true or false",
        ),
        (
            {**BASE, "SERVER_SSL_ENABLED": "true"},
            "TLS_SERVER_CERT_PATH is unset: required when SERVER_SSL_ENABLED=true",
        ),
        (
            {
                **BASE,
                "SERVER_SSL_ENABLED": "true",
                "TLS_SERVER_CERT_PATH": "/nope.pem",
                "TLS_SERVER_KEY_PATH": "/nope.key",
            },
            "TLS_SERVER_CERT_PATH='/nope.pem' is invalid: allowed is a readable PEM file",
        ),
    ],
)
def test_bad_values_stop_with_one_line_naming_the_variable(env, expected):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    message = str(caught.value)
    assert message.startswith(expected)
    assert "\n" not in message


def test_tls_needs_both_files(tmp_path):
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    env = {**BASE, "SERVER_SSL_ENABLED": "true", "TLS_SERVER_CERT_PATH": str(cert)}
    with pytest.raises(SettingsError, match="TLS_SERVER_KEY_PATH is unset"):
        Settings.from_env(env)
    key = tmp_path / "key.pem"
    key.write_text("x")
    s = Settings.from_env({**env, "TLS_SERVER_KEY_PATH": str(key)})
    assert s.ssl_enabled and s.tls_key_path == key


def test_tracing_follows_the_standard_switches():
    assert Settings.from_env(BASE).tracing_enabled
    assert not Settings.from_env({**BASE, "OTEL_SDK_DISABLED": "true"}).tracing_enabled
    assert not Settings.from_env({**BASE, "OTEL_TRACES_EXPORTER": "none"}).tracing_enabled


def test_the_store_defaults_and_its_variables():
    store = Settings.from_env({**BASE, "LLM_INFERENCE_PORT": "9000"}).store
    assert store.database_url is None and store.url.endswith("llm-inference-api/llm.db")
    assert store.store_responses and store.retention_days == 30 and store.max_file_mb == 512
    assert store.replica_id.endswith(":9000") and store.lease_seconds == 30 and store.max_attempts == 3
    custom = Settings.from_env(
        {
            **BASE,
            "LLM_DATA_DIR": "/srv/state",
            "LLM_STORE_RESPONSES": "false",
            "LLM_RETENTION_DAYS": "7",
            "LLM_REPLICA_ID": "pod-1",
            "LLM_DATABASE_URL": "postgresql://u:p@db/llm",
        }
    ).store
    assert custom.url == "postgresql://u:p@db/llm" and custom.replica_id == "pod-1"
    assert not custom.store_responses and custom.retention_seconds == 7 * 86400


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"LLM_DATABASE_URL": "mysql://u:secret@db/llm"}, "LLM_DATABASE_URL='db/llm' is invalid"),
        ({"LLM_RETENTION_DAYS": "0"}, "LLM_RETENTION_DAYS='0' is invalid"),
        ({"LLM_MAX_FILE_MB": "lots"}, "LLM_MAX_FILE_MB='lots' is invalid"),
        ({"LLM_WORK_LEASE_SECONDS": "0.5"}, "LLM_WORK_LEASE_SECONDS='0.5' is invalid"),
    ],
)
def test_bad_store_values_stop_naming_the_variable(env, expected):
    with pytest.raises(SettingsError) as error:
        Settings.from_env({**BASE, **env})
    assert expected in str(error.value) and "secret" not in str(error.value)
