"""Summaries of repeated measurements: percentiles, and median/min/max under one name."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable


def percentile(values: Iterable[float], share: float) -> float:
    """Linear-interpolated percentile (share in 0..1)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * share
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def spread(name: str, values: Iterable[float]) -> dict[str, float]:
    """`{name}_median`, `{name}_min` and `{name}_max` of the values."""
    values = list(values)
    return {
        f"{name}_median": statistics.median(values),
        f"{name}_min": min(values),
        f"{name}_max": max(values),
    }
