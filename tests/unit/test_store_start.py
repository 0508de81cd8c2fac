"""Replicas that share a data directory start together: each finds the store ready, none fails."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from app.store import db
from app.store.settings import StoreSettings


def _start(path: str, barrier, results) -> None:
    barrier.wait()  # every replica opens the fresh directory at the same moment
    try:
        db.prepare(StoreSettings(data_dir=Path(path))).dispose()
        results.put("ok")
    except Exception as error:  # reported to the test, which names it
        results.put(repr(error))


def test_replicas_starting_together_on_a_fresh_data_directory_all_start(tmp_path):
    context = multiprocessing.get_context("spawn")
    for attempt in range(2):
        barrier, results = context.Barrier(4), context.Queue()
        replicas = [
            context.Process(target=_start, args=(str(tmp_path / str(attempt)), barrier, results))
            for _ in range(4)
        ]
        for replica in replicas:
            replica.start()
        outcomes = [results.get(timeout=120) for _ in replicas]
        for replica in replicas:
            replica.join(timeout=60)
        assert outcomes == ["ok"] * 4
