"""The benchmarks' chart (matplotlib, no display): two sides as grouped bars with their ratio over each
group, and a panel of lines per step where there is one."""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes

COLORS = ("#1f77b4", "#ff7f0e")  # first side, second side


@dataclass(frozen=True)
class Bars:
    """A panel of grouped bars: one group per (key, label), one bar per side."""

    title: str
    keys: list[tuple[str, str]]


@dataclass(frozen=True)
class Lines:
    """A panel of lines: one per name, one point per step (numbered from 1)."""

    title: str
    xlabel: str
    series: dict[str, list[float]]


def draw(
    path: Path,
    title: str,
    values: dict[str, dict[str, float]],
    ratio: dict[str, float],
    panels: list[Bars | Lines],
    columns: int = 3,
) -> None:
    """The panels on a grid `columns` wide; over each group of bars the ratio first side / second."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.4 * columns, 4.6 * rows), squeeze=False)
    flat = list(axes.flat)
    for axis, panel in zip(flat, panels, strict=False):
        if isinstance(panel, Bars):
            bars(axis, panel, values, ratio)
        else:
            lines(axis, panel)
    for axis in flat[len(panels) :]:
        axis.set_axis_off()
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def bars(axis: Axes, panel: Bars, values: dict[str, dict[str, float]], ratio: dict[str, float]) -> None:
    keys = [key for key, _ in panel.keys]
    positions = range(len(keys))
    sides = list(values)
    for offset, side, color in zip((-0.2, 0.2), sides, COLORS, strict=False):
        heights = [values[side][key] for key in keys]
        axis.bar([p + offset for p in positions], heights, 0.4, label=side, color=color)
    top = max(values[side][key] for side in sides for key in keys)
    for position, key in zip(positions, keys, strict=True):
        height = max(values[side][key] for side in sides)
        axis.text(position, height + top * 0.02, f"{ratio.get(key, math.nan):.2f}x", ha="center", fontsize=8)
    axis.set_xticks(list(positions), [textwrap.fill(label, 14) for _, label in panel.keys], fontsize=7)
    axis.set_ylim(0, top * 1.15)
    axis.set_title(panel.title, fontsize=9)
    axis.legend(fontsize=7)


def lines(axis: Axes, panel: Lines) -> None:
    steps = max(len(values) for values in panel.series.values())
    for name, values in panel.series.items():
        axis.plot(range(1, len(values) + 1), values, marker="o", label=name)
    axis.set_xticks(range(1, steps + 1))
    axis.set_xlabel(panel.xlabel, fontsize=8)
    axis.set_ylim(bottom=0)
    axis.set_title(panel.title, fontsize=9)
    axis.legend(fontsize=7)
