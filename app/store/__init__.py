"""Durable state: stored responses, files, batches and their items, in SQLite (one host) or
PostgreSQL (replicas), through SQLAlchemy; the schema is migrated by Alembic at start."""
