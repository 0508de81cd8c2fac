"""Typed service settings, read and validated once from the environment (the only reader of os.environ)."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from app.catalog_file import CatalogEntry, CatalogError
from app.catalog_file import load as load_catalog
from app.env_reader import Reader, SettingsError
from app.keys_file import ApiKey, KeysError
from app.keys_file import from_list as keys_from_list
from app.keys_file import load as load_keys
from app.keys_file import unique as unique_keys
from app.store.settings import StoreSettings, store_settings

EMBEDDED_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


@dataclass(frozen=True)
class Settings:
    """Everything the service is configured with; defaults match the README's tables."""

    allowed_models: tuple[str, ...] = ()
    allow_any_model: bool = False
    hostname: str = "0.0.0.0"
    port: int = 8091
    cors_allowed_origins: tuple[str, ...] = ("*",)
    default_temperature: float = 0.7
    default_top_p: float = 0.9
    default_max_tokens: int = 512
    max_tokens_limit: int = 4096
    max_concurrent_requests: int = 10
    max_loaded_models: int = 0
    models_file: Path | None = None
    catalog: Mapping[str, CatalogEntry] = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=dict)  # catalog alias -> model id
    queue_timeout_seconds: float = 10.0
    max_queued_requests: int | None = None  # None: 4 per slot
    request_timeout_seconds: float = 0.0
    drain_seconds: int = 25
    max_worker_memory_mb: int = 0
    worker_timeout_seconds: int = 300
    model_path: Path | None = None
    hf_home: Path | None = None
    hf_endpoint: str | None = None
    hf_hub_offline: bool = False
    in_situ_quant: str = "auto"
    max_seqs: int = 0
    model_replicas: int = 1
    prefix_cache_n: int | None = None  # None: the engine's default (16)
    prefix_cache_mb: int = 256  # per runner, on CPU: the server trims the engine's prefix cache past it
    service_name: str = "llm-inference-api"
    otlp_endpoint: str = "http://localhost:4317"
    tracing_enabled: bool = True
    log_format: str = "json"
    log_level: str = "INFO"
    log_prompts: bool = False
    api_keys: Mapping[str, ApiKey] = field(default_factory=dict)  # name -> key; empty: the server is open
    metrics_public: bool = True
    docs_public: bool = True
    admin_open: bool = False  # without keys: the admin routes (model management) open to anyone
    rate_window_seconds: float = 60.0  # the "minute" of tokens_per_minute (a day is 1440 of them)
    trusted_proxies: tuple = ()  # networks whose X-Forwarded-For is believed
    ssl_enabled: bool = False
    tls_cert_path: Path | None = None
    tls_key_path: Path | None = None
    store: StoreSettings = field(default_factory=StoreSettings)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `environ` (default: the process environment, parsed once per process
        while it is unchanged: gunicorn's config, its logger and the app share one parse); raise
        SettingsError."""
        if environ is None:
            return _from_process_environment(tuple(sorted(os.environ.items())))
        return cls._parse(environ)

    @classmethod
    def _parse(cls, environ: Mapping[str, str]) -> Settings:
        env = Reader(environ)
        models_raw = env.required("LLM_ALLOWED_MODELS")
        allow_any = models_raw.strip() == "*"
        models = () if allow_any else tuple(m.strip() for m in models_raw.split(",") if m.strip())
        if not allow_any and not models:
            raise SettingsError(
                f"LLM_ALLOWED_MODELS={models_raw!r} is invalid: allowed is a comma-separated list "
                "of model ids or '*'"
            )
        models_file = env.path("LLM_MODELS_FILE")
        catalog: dict[str, CatalogEntry] = {}
        if models_file is not None:
            try:
                catalog = load_catalog(models_file)
            except CatalogError as error:
                raise SettingsError(f"LLM_MODELS_FILE: {error}") from None
        aliases = {e.alias: e.model_id for e in catalog.values() if e.alias}
        models = tuple(dict.fromkeys(aliases.get(m, m) for m in models))
        api_keys = _api_keys(env)
        for key in api_keys.values():
            if key.models:
                key_models = tuple(dict.fromkeys(aliases.get(m, m) for m in key.models))
                unknown = [m for m in key_models if not allow_any and m not in models]
                if unknown:
                    raise SettingsError(
                        f"API key '{key.name}': models {', '.join(unknown)} are not in LLM_ALLOWED_MODELS"
                    )
                api_keys[key.name] = replace(key, models=key_models)
        settings = cls(
            allowed_models=models,
            allow_any_model=allow_any,
            hostname=env.text("LLM_INFERENCE_HOSTNAME", cls.hostname),
            port=env.integer("LLM_INFERENCE_PORT", cls.port, 1, 65535),
            cors_allowed_origins=env.csv("CORS_ALLOWED_ORIGINS", cls.cors_allowed_origins),
            default_temperature=env.number("LLM_DEFAULT_TEMPERATURE", cls.default_temperature, 0, 2),
            default_top_p=env.number("LLM_DEFAULT_TOP_P", cls.default_top_p, 0, 1),
            default_max_tokens=env.integer("LLM_DEFAULT_MAX_TOKENS", cls.default_max_tokens, 1),
            max_tokens_limit=env.integer("LLM_MAX_TOKENS_LIMIT", cls.max_tokens_limit, 1),
            max_concurrent_requests=env.integer(
                "LLM_MAX_CONCURRENT_REQUESTS", cls.max_concurrent_requests, 1, 1024
            ),
            max_loaded_models=env.integer("LLM_MAX_LOADED_MODELS", cls.max_loaded_models, 0, 1024),
            models_file=models_file,
            catalog=catalog,
            aliases=aliases,
            queue_timeout_seconds=env.number("LLM_QUEUE_TIMEOUT_SECONDS", cls.queue_timeout_seconds, 0, 3600),
            max_queued_requests=env.integer("LLM_MAX_QUEUED_REQUESTS", None, 0, 100_000),
            request_timeout_seconds=env.number(
                "LLM_REQUEST_TIMEOUT_SECONDS", cls.request_timeout_seconds, 0, 86400
            ),
            drain_seconds=env.integer("LLM_DRAIN_SECONDS", cls.drain_seconds, 3, 3600),
            max_worker_memory_mb=env.integer("LLM_MAX_WORKER_MEMORY_MB", cls.max_worker_memory_mb, 0),
            worker_timeout_seconds=env.integer(
                "LLM_WORKER_TIMEOUT_SECONDS", cls.worker_timeout_seconds, 10, 86400
            ),
            model_path=env.path("LLM_MODEL_PATH"),
            hf_home=env.path("HF_HOME"),
            hf_endpoint=env.optional("HF_ENDPOINT"),
            hf_hub_offline=env.boolean("HF_HUB_OFFLINE", False),
            in_situ_quant=env.text("LLM_IN_SITU_QUANT", cls.in_situ_quant),
            max_seqs=env.integer("LLM_MAX_SEQS", cls.max_seqs, 0, 1024),
            model_replicas=env.integer("LLM_MODEL_REPLICAS", cls.model_replicas, 1, 16),
            prefix_cache_n=env.integer("LLM_PREFIX_CACHE_N", None, 0, 1024),
            prefix_cache_mb=env.integer("LLM_PREFIX_CACHE_MB", cls.prefix_cache_mb, 0, 1_048_576),
            service_name=env.text("SERVICE_NAME", cls.service_name),
            otlp_endpoint=env.text("OTEL_EXPORTER_OTLP_ENDPOINT", cls.otlp_endpoint),
            tracing_enabled=not env.boolean("OTEL_SDK_DISABLED", False)
            and env.text("OTEL_TRACES_EXPORTER", "otlp").lower() != "none",
            log_format=env.choice("LOG_FORMAT", cls.log_format, ("json", "pretty")),
            log_level=env.choice(
                "LOG_LEVEL", cls.log_level, ("DEBUG", "INFO", "WARNING", "ERROR"), upper=True
            ),
            log_prompts=env.boolean("LLM_LOG_PROMPTS", False),
            api_keys=api_keys,
            metrics_public=env.boolean("LLM_METRICS_PUBLIC", True),
            docs_public=env.boolean("LLM_DOCS_PUBLIC", True),
            admin_open=env.boolean("LLM_ADMIN_OPEN", False),
            rate_window_seconds=env.number("LLM_RATE_WINDOW_SECONDS", cls.rate_window_seconds, 1, 3600),
            trusted_proxies=env.networks("LLM_TRUSTED_PROXIES"),
            ssl_enabled=env.boolean("SERVER_SSL_ENABLED", False),
            tls_cert_path=env.path("TLS_SERVER_CERT_PATH"),
            tls_key_path=env.path("TLS_SERVER_KEY_PATH"),
            store=store_settings(env, env.integer("LLM_INFERENCE_PORT", cls.port, 1, 65535)),
        )
        settings._check_consistency()
        return settings

    def _check_consistency(self) -> None:
        if self.admin_open and self.api_keys:
            raise SettingsError(
                "LLM_ADMIN_OPEN=true is invalid with API keys: allowed only without keys (with keys, "
                "mark keys admin: admin = true in LLM_API_KEYS_FILE, or LLM_ADMIN_API_KEYS)"
            )
        if self.default_max_tokens > self.max_tokens_limit:
            raise SettingsError(
                f"LLM_DEFAULT_MAX_TOKENS={self.default_max_tokens} is invalid: allowed is at most "
                f"LLM_MAX_TOKENS_LIMIT ({self.max_tokens_limit})"
            )
        if self.ssl_enabled:
            for name, path in (
                ("TLS_SERVER_CERT_PATH", self.tls_cert_path),
                ("TLS_SERVER_KEY_PATH", self.tls_key_path),
            ):
                if path is None:
                    raise SettingsError(
                        f"{name} is unset: required when SERVER_SSL_ENABLED=true "
                        "(allowed: a readable PEM file)"
                    )
                if not path.is_file():
                    raise SettingsError(f"{name}={str(path)!r} is invalid: allowed is a readable PEM file")

    def canonical(self, name: str) -> str:
        """The model id for a name a client used: a catalog alias, or the id itself."""
        return self.aliases.get(name, name)

    @property
    def bind(self) -> str:
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        return f"{host}:{self.port}"


def _api_keys(env: Reader) -> dict[str, ApiKey]:
    """The keys of LLM_API_KEYS or LLM_API_KEYS_FILE (not both), with LLM_ADMIN_API_KEYS (named
    admin-<digest>: the admin scope) added; none: the server is open."""
    listed, path = env.optional("LLM_API_KEYS"), env.path("LLM_API_KEYS_FILE")
    if listed and path:
        raise SettingsError("LLM_API_KEYS and LLM_API_KEYS_FILE are both set: allowed is one of them")
    try:
        keys = load_keys(path) if path is not None else keys_from_list(listed) if listed else {}
    except KeysError as error:
        name = "LLM_API_KEYS_FILE: " if path is not None else ""
        raise SettingsError(f"{name}{error}") from None
    admins = env.optional("LLM_ADMIN_API_KEYS")
    if admins:
        keys.update(_admin_keys(admins, keys))
    return keys


def _admin_keys(raw: str, others: dict[str, ApiKey]) -> dict[str, ApiKey]:
    try:
        admin_keys = keys_from_list(raw, "LLM_ADMIN_API_KEYS", "admin", admin=True)
        taken = sorted(set(admin_keys) & set(others))
        if taken:
            raise KeysError(f"LLM_ADMIN_API_KEYS: the name {taken[0]} is taken in LLM_API_KEYS_FILE")
        unique_keys("LLM_ADMIN_API_KEYS", {**others, **admin_keys})
    except KeysError as error:
        raise SettingsError(str(error)) from None
    return admin_keys


@functools.lru_cache(maxsize=1)
def _from_process_environment(items: tuple[tuple[str, str], ...]) -> Settings:
    return Settings._parse(dict(items))
