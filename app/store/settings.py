"""The store's variables: where durable state lives, how long it is kept, and how work is shared."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from app.env_reader import Reader, SettingsError

DAY = 86400


def default_data_dir() -> Path:
    """Where `make run` keeps its state when LLM_DATA_DIR is unset: the user's data directory."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "llm-inference-api"


@dataclass(frozen=True)
class StoreSettings:
    data_dir: Path = Path("data")
    database_url: str | None = None  # postgresql://...: shared by replicas; None: SQLite in data_dir
    store_responses: bool = True  # false: /v1/responses stores nothing (store: true is refused)
    retention_days: float = 30.0  # stored responses, files and batches (with their outputs)
    max_file_mb: int = 512
    max_batch_items: int = 50_000
    replica_id: str = ""
    lease_seconds: float = 30.0  # a replica's claim on a work unit, renewed while it runs
    max_attempts: int = 3  # a unit cut by a crash this many times fails instead of running again

    @property
    def url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'llm.db'}"

    @property
    def retention_seconds(self) -> float:
        return self.retention_days * DAY


def store_settings(env: Reader, port: int) -> StoreSettings:
    data_dir = env.path("LLM_DATA_DIR") or default_data_dir()
    url = env.optional("LLM_DATABASE_URL")
    if url is not None and not url.startswith(("postgresql://", "postgres://")):
        raise SettingsError(
            f"LLM_DATABASE_URL={url.split('@')[-1]!r} is invalid: allowed is a "
            "postgresql://USER:PASSWORD@HOST/DB URL (unset: SQLite under LLM_DATA_DIR)"
        )
    return StoreSettings(
        data_dir=data_dir,
        database_url=url,
        store_responses=env.boolean("LLM_STORE_RESPONSES", True),
        retention_days=env.number("LLM_RETENTION_DAYS", StoreSettings.retention_days, 0.001, 3650),
        max_file_mb=env.integer("LLM_MAX_FILE_MB", StoreSettings.max_file_mb, 1, 1_048_576),
        max_batch_items=env.integer("LLM_MAX_BATCH_ITEMS", StoreSettings.max_batch_items, 1, 10_000_000),
        replica_id=env.text("LLM_REPLICA_ID", f"{socket.gethostname()}:{port}"),
        lease_seconds=env.number("LLM_WORK_LEASE_SECONDS", StoreSettings.lease_seconds, 1, 3600),
        max_attempts=env.integer("LLM_WORK_MAX_ATTEMPTS", StoreSettings.max_attempts, 1, 100),
    )
