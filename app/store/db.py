"""The store's database: one SQLAlchemy engine (SQLite in WAL mode, or PostgreSQL through psycopg),
its schema brought to the newest version by Alembic at start, and short transactions.

Transactions never wait on the network or a client inside them: under gevent every greenlet of the
worker shares one thread, so a transaction that yielded could hold a lock another greenlet of the
same thread then waits for. SQLite waits at most BUSY_SECONDS for a lock, PostgreSQL LOCK_TIMEOUT.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from filelock import FileLock
from sqlalchemy.engine import Connection, Engine

from app.env_reader import SettingsError
from app.errors import StorageError
from app.store.settings import StoreSettings

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
BUSY_SECONDS = 5
LOCK_TIMEOUT = "5s"
_MIGRATION_LOCK = 7_245_001  # PostgreSQL advisory lock: replicas starting together migrate one at a time


def create_engine(settings: StoreSettings) -> Engine:
    if settings.database_url is None:
        engine = sa.create_engine(
            settings.url, connect_args={"timeout": BUSY_SECONDS, "check_same_thread": False}
        )

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")  # a commit is on disk before it is acknowledged
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    url = sa.engine.make_url(settings.database_url).set(drivername="postgresql+psycopg")
    return sa.create_engine(
        url, pool_pre_ping=True, connect_args={"options": f"-c lock_timeout={LOCK_TIMEOUT}"}
    )


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest version (nothing to do when it is there already)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def prepare(settings: StoreSettings) -> Engine:
    """Open and migrate the store, or raise SettingsError naming the variable and why it cannot be used."""
    variable = "LLM_DATABASE_URL" if settings.database_url else "LLM_DATA_DIR"
    shown = settings.database_url.split("@")[-1] if settings.database_url else str(settings.data_dir)
    if settings.database_url is None:
        try:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            probe = settings.data_dir / f".write-probe-{os.getpid()}"  # replicas may start together
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            raise SettingsError(f"{variable}={shown!r} cannot be used: {error.strerror or error}") from None
    engine = create_engine(settings)
    try:
        if settings.database_url is None:
            # Replicas sharing a data directory start together: one migrates, the others then find it done
            # (PostgreSQL takes an advisory lock in migrate).
            with FileLock(settings.data_dir / ".migrate.lock"):
                migrate(engine)
        else:
            migrate(engine)
    except Exception as error:
        engine.dispose()
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise SettingsError(f"{variable}={shown!r} cannot be used: {reason}") from None
    return engine


class Database:
    """The engine, and transactions whose failures reach a request as StorageError (503)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    @contextlib.contextmanager
    def begin(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as connection:
                yield connection
        except sa.exc.SQLAlchemyError as error:
            reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
            logger.error("store: %s", reason)
            raise StorageError(
                f"The store could not complete the change ({reason}); nothing was written, retry",
                headers={"Retry-After": "1"},
            ) from None

    def close(self) -> None:
        self.engine.dispose()
