"""The part of PromQL the dashboard's panels use, evaluated over saved scrapes of /metrics: rate,
histogram_quantile and sums by label, each per scrape over a fixed window."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

WINDOW_SECONDS = 30.0  # the rate window, as $__rate_interval would be for a 2 s scrape on a quiet panel

Labels = frozenset[tuple[str, str]]
Samples = dict[str, dict[Labels, float]]
Where = dict[str, set[str]]  # label name -> the values it may have
Groups = dict[tuple[str, ...], list[float]]  # one value per scrape for each group of `by` labels


@dataclass(frozen=True)
class Scrape:
    """One GET /metrics: when, and every sample by name and label set."""

    at: float
    samples: Samples


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return samples


def save(scrapes: list[Scrape], path: Path) -> None:
    rows = [
        [
            scrape.at,
            [
                [name, dict(labels), value]
                for name, series in scrape.samples.items()
                for labels, value in series.items()
            ],
        ]
        for scrape in scrapes
    ]
    path.write_text(json.dumps(rows))


def load(path: Path) -> list[Scrape]:
    scrapes = []
    for at, rows in json.loads(path.read_text()):
        samples: Samples = {}
        for name, labels, value in rows:
            samples.setdefault(name, {})[frozenset(labels.items())] = value
        scrapes.append(Scrape(at, samples))
    return scrapes


def matches(labels: Labels, where: Where) -> bool:
    values = dict(labels)
    return all(values.get(name) in allowed for name, allowed in where.items())


def key_of(labels: Labels, by: tuple[str, ...]) -> tuple[str, ...]:
    values = dict(labels)
    return tuple(values.get(name, "") for name in by)


def windows(scrapes: list[Scrape]) -> Iterator[tuple[int, int]]:
    """(i, j) for every scrape i whose window holds an earlier scrape: j is the window's first."""
    for i in range(len(scrapes)):
        j = i
        while j > 0 and scrapes[j - 1].at >= scrapes[i].at - WINDOW_SECONDS:
            j -= 1
        if j < i:
            yield i, j


def increases(scrapes: list[Scrape], j: int, i: int, name: str, where: Where) -> dict[Labels, float]:
    """Counter increase from scrape j to scrape i per series, resets handled.

    A series absent at j counts from 0: the server started with the load, so its first increments
    are real (Prometheus would drop them, having no earlier sample).
    """
    before = scrapes[j].samples.get(name, {})
    out: dict[Labels, float] = {}
    for labels, now in scrapes[i].samples.get(name, {}).items():
        if matches(labels, where):
            then = before.get(labels, 0.0)
            out[labels] = now - then if now >= then else now
    return out


def sum_by(values: dict[Labels, float], by: tuple[str, ...]) -> dict[tuple[str, ...], float]:
    out: dict[tuple[str, ...], float] = {}
    for labels, value in values.items():
        key = key_of(labels, by)
        out[key] = out.get(key, 0.0) + value
    return out


def rate(scrapes: list[Scrape], name: str, by: tuple[str, ...] = (), where: Where | None = None) -> Groups:
    """sum by (by) (rate(name{where}[WINDOW])), per scrape (no extrapolation to the window's edges)."""
    out: Groups = {}
    for i, j in windows(scrapes):
        seconds = scrapes[i].at - scrapes[j].at
        for key, delta in sum_by(increases(scrapes, j, i, name, where or {}), by).items():
            out.setdefault(key, [math.nan] * len(scrapes))[i] = delta / seconds
    return out


def histogram_quantile(q: float, buckets: dict[float, float]) -> float:
    """Prometheus's bucketQuantile: linear interpolation inside the bucket that holds the rank."""
    bounds = sorted(buckets)
    if len(bounds) < 2 or not math.isinf(bounds[-1]):
        return math.nan
    counts = [buckets[bound] for bound in bounds]
    for k in range(1, len(counts)):  # ensureMonotonic
        counts[k] = max(counts[k], counts[k - 1])
    observations = counts[-1]
    if observations == 0:
        return math.nan
    rank = q * observations
    b = next((k for k in range(len(bounds) - 1) if counts[k] >= rank), len(bounds) - 1)
    if b == len(bounds) - 1:
        return bounds[-2]
    if b == 0 and bounds[0] <= 0:
        return bounds[0]
    start, count = 0.0, counts[b]
    if b > 0:
        start, count, rank = bounds[b - 1], counts[b] - counts[b - 1], rank - counts[b - 1]
    return start + (bounds[b] - start) * (rank / count)


def quantile(
    q: float,
    scrapes: list[Scrape],
    name: str,
    by: tuple[str, ...] = (),
    where: Where | None = None,
) -> Groups:
    """histogram_quantile(q, sum by (le, by) (rate(name_bucket{where}[WINDOW]))), per scrape."""
    out: Groups = {}
    for i, j in windows(scrapes):
        grouped: dict[tuple[str, ...], dict[float, float]] = {}
        deltas = sum_by(increases(scrapes, j, i, f"{name}_bucket", where or {}), (*by, "le"))
        for (*key, le), delta in deltas.items():
            grouped.setdefault(tuple(key), {})[float(le)] = delta
        for key, buckets in grouped.items():
            out.setdefault(key, [math.nan] * len(scrapes))[i] = histogram_quantile(q, buckets)
    return out


def gauge(scrapes: list[Scrape], name: str, by: tuple[str, ...] = (), where: Where | None = None) -> Groups:
    """sum by (by) (name{where}), per scrape."""
    out: Groups = {}
    for i, scrape in enumerate(scrapes):
        values = {k: v for k, v in scrape.samples.get(name, {}).items() if matches(k, where or {})}
        for key, value in sum_by(values, by).items():
            out.setdefault(key, [math.nan] * len(scrapes))[i] = value
    return out
