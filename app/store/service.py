"""The store as the views see it: the database, its settings and the work loop."""

from __future__ import annotations

from dataclasses import dataclass

from app.store.db import Database, prepare
from app.store.settings import StoreSettings
from app.store.work import WorkLoop


@dataclass
class Store:
    settings: StoreSettings
    db: Database
    work: WorkLoop

    @classmethod
    def open(cls, settings: StoreSettings, slots: int) -> Store:
        """Open (and migrate) the database; background work may hold all slots but one."""
        db = Database(prepare(settings))
        return cls(settings, db, WorkLoop(db, settings, max(1, slots - 1)))
