"""The store's state on each scrape: stored objects, queued and running work units (read from the
database: the figures are the cluster's when replicas share PostgreSQL), and this replica's units."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from app.store.tables import batch_items, batches, files, responses

logger = logging.getLogger(__name__)


class StoreCollector(Collector):
    def __init__(self, store: Any, limiter: Any) -> None:
        self._store = store
        self._limiter = limiter

    def collect(self) -> Iterable[Any]:
        objects = GaugeMetricFamily("llm_stored_objects", "Objects in the store", labels=["kind"])
        units = GaugeMetricFamily(
            "llm_work_units", "Background responses and batch items, by state", labels=["kind", "state"]
        )
        local = GaugeMetricFamily("llm_work_running", "Work units this replica runs now")
        local.add_metric([], len(self._store.work.running))
        preempted = CounterMetricFamily(
            "llm_work_preemptions", "Background units ended for an interactive request, to run again later"
        )
        preempted.add_metric([], self._store.work.preemptions)
        lane = GaugeMetricFamily("llm_background_slots_in_use", "Slots held by the lowest (background) lane")
        lane.add_metric([], self._limiter.background_running)
        try:
            with self._store.db.begin() as connection:
                for kind, table in (("responses", responses), ("files", files), ("batches", batches)):
                    objects.add_metric(
                        [kind], connection.execute(sa.select(sa.func.count()).select_from(table)).scalar()
                    )
                live = batch_items.c.batch_id.in_(
                    sa.select(batches.c.id).where(batches.c.status == "in_progress")
                )
                for kind, table, states, scope in (
                    ("background_response", responses, ("queued", "in_progress"), sa.true()),
                    # a cancelled or expired batch's unrun items will never run: not pending work
                    (
                        "batch_item",
                        batch_items,
                        ("pending", "running"),
                        sa.or_(batch_items.c.status == "running", live),
                    ),
                ):
                    rows = connection.execute(
                        sa.select(table.c.status, sa.func.count())
                        .where(table.c.status.in_(states), scope)
                        .group_by(table.c.status)
                    )
                    found = dict(rows.all())
                    for state in states:
                        units.add_metric([kind, state], found.get(state, 0))
        except Exception:
            logger.warning("metrics: the store could not be read")
        yield from (objects, units, local, lane, preempted)
