"""A file's size in 64 bits: LLM_MAX_FILE_MB allows files over 2 GiB, past PostgreSQL's 32-bit integer.
SQLite's integers are 64-bit already."""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("files", "bytes", type_=sa.BigInteger, existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("files", "bytes", type_=sa.Integer, existing_nullable=False)
