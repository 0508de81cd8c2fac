"""Claiming work units (batch items, background responses) so that no unit runs twice at once.

A claim sets the unit's lease to this replica; PostgreSQL's `FOR UPDATE SKIP LOCKED` lets replicas
claim side by side without waiting on each other; SQLite has one writer at a time, which is the same
guarantee. A unit whose lease has run out (its replica died) is free to claim again.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def claim(
    connection: Connection,
    table: sa.Table,
    ready: sa.ColumnElement,
    *,
    replica: str,
    now: float,
    lease_seconds: float,
    limit: int,
    running: str,
    scope: sa.ColumnElement | None = None,
    first: sa.ColumnElement | None = None,
) -> list[sa.Row]:
    """Claim up to `limit` units within `scope` that are `ready` (or whose lease ran out), ordered by
    `first` then the primary key; they become `running` under this replica's lease. Returns the claimed
    rows."""
    keys = list(table.primary_key.columns)
    free = sa.or_(ready, sa.and_(table.c.status == running, table.c.lease_until < now))
    if scope is not None:
        free = sa.and_(free, scope)
    order = [first, *keys] if first is not None else keys
    pick = sa.select(*keys).where(free).order_by(*order).limit(limit)
    if connection.dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    target = keys[0] if len(keys) == 1 else sa.tuple_(*keys)
    update = (
        table.update()
        .where(target.in_(pick))
        .values(
            status=running,
            lease_owner=replica,
            lease_until=now + lease_seconds,
            attempts=table.c.attempts + 1,
        )
        .returning(*table.c)
    )
    return list(connection.execute(update))


def renew(connection: Connection, table: sa.Table, replica: str, until: float, running: str) -> None:
    """Extend the lease of every unit this replica runs."""
    connection.execute(
        table.update()
        .where(table.c.lease_owner == replica, table.c.status == running)
        .values(lease_until=until)
    )


def reclaim_own(connection: Connection, table: sa.Table, replica: str, running: str) -> int:
    """At start: units this replica's previous life was running are free at once (it died)."""
    result = connection.execute(
        table.update()
        .where(table.c.lease_owner == replica, table.c.status == running)
        .values(lease_until=0.0)
    )
    return result.rowcount
