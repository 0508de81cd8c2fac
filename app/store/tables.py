"""The tables, as SQLAlchemy Core sees them (the migrations in `migrations/` create them).

Every object row carries `owner`: the name of the API key that made it ("" on an open server).
Times are Unix seconds (float). Work units (batch items, background responses) carry a lease: the
replica running one renews `lease_until`; a unit whose lease ran out is free to claim again.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

responses = Table(
    "responses",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("owner", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("background", Boolean, nullable=False),
    Column("request", Text, nullable=False),  # the request body (JSON)
    Column("input_items", Text, nullable=False),  # this response's input items, with ids (JSON)
    Column("context", Text, nullable=False),  # the conversation before this response's input (JSON)
    Column("body", Text),  # the response object (JSON) once it has one
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("lease_owner", String(200)),
    Column("lease_until", Float),
)

files = Table(
    "files",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("owner", String(64), nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("filename", String(512), nullable=False),
    Column("bytes", BigInteger, nullable=False),  # migration 0002
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("batch_id", String(64)),  # a batch's output or error file: its lines are the batch's items
    Column("kind", String(16), nullable=False),  # upload, output, error
)

file_chunks = Table(
    "file_chunks",
    metadata,
    Column("file_id", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("data", LargeBinary, nullable=False),
)

batches = Table(
    "batches",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("owner", String(64), nullable=False),
    Column("endpoint", String(64), nullable=False),
    Column("input_file_id", String(64), nullable=False),
    Column("completion_window", String(8), nullable=False),
    Column("status", String(16), nullable=False),
    Column("metadata", Text),
    Column("errors", Text),
    Column("output_file_id", String(64)),
    Column("error_file_id", String(64)),
    Column("total", Integer, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("times", Text, nullable=False),  # {"in_progress_at": ..., "completed_at": ...} (JSON)
    Column("traceparent", String(64)),  # the creating request's span: each item's span links to it
)

batch_items = Table(
    "batch_items",
    metadata,
    Column("batch_id", String(64), primary_key=True),
    Column("line", Integer, primary_key=True),
    Column("custom_id", String(512), nullable=False),
    Column("body", Text, nullable=False),
    Column("status", String(16), nullable=False),  # pending, running, done, error
    Column("result", Text),  # the output or error file's line (JSON)
    Column("attempts", Integer, nullable=False, default=0),
    Column("lease_owner", String(200)),
    Column("lease_until", Float),
)
