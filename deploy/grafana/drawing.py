"""Grafana's look, drawn with matplotlib: the dashboard's panels at their grid positions, time series
and stats styled by each panel's field config, in the dark theme."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from deploy.grafana.panels import PANELS, Series, loaded_models
from deploy.grafana.promql import Scrape

# Grafana's dark theme
BACKGROUND = "#111217"
PANEL = "#181b1f"
BORDER = "#2c3235"
TEXT = "#ccccdc"
MUTED = "#8e8e9e"
GRID = "#24272c"
COLORS = {
    "green": "#73bf69",
    "yellow": "#fade2a",
    "red": "#f2495c",
    "orange": "#ff9830",
    "purple": "#b877d9",
    "blue": "#5794f2",
    "text": TEXT,
}
PALETTE = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#705da0"]


def format_value(value: float, unit: str) -> str:
    """A tick or stat value in the panel's Grafana unit."""
    if unit == "s":
        if value == 0:
            return "0 s"
        if abs(value) < 1:
            return f"{value * 1000:.3g} ms"
        return f"{value:.3g} s"
    if unit == "reqps":
        return f"{value:.3g} req/s"
    if unit.startswith("suffix:"):
        return f"{value:.3g}{unit.removeprefix('suffix:')}"
    return f"{value:.3g}"


@dataclass
class Style:
    """How a series is drawn: Grafana's defaults for the panel, then its field overrides."""

    color: str
    dashed: bool = False
    fill: float = 0.08


def style_of(panel: dict[str, Any], label: str, default_color: str) -> Style:
    style = Style(default_color, fill=panel["fieldConfig"]["defaults"]["custom"]["fillOpacity"] / 100)
    for override in panel["fieldConfig"]["overrides"]:
        matcher = override["matcher"]
        hit = (matcher["id"] == "byName" and matcher["options"] == label) or (
            matcher["id"] == "byRegexp" and re.search(matcher["options"], label)
        )
        for prop in override["properties"] if hit else []:
            if prop["id"] == "color":
                style.color = COLORS[prop["value"]["fixedColor"]]
            elif prop["id"] == "custom.lineStyle":
                style.dashed = prop["value"]["fill"] == "dash"
            elif prop["id"] == "custom.fillOpacity":
                style.fill = prop["value"] / 100
    return style


def draw_timeseries(ax: Axes, panel: dict[str, Any], series: list[Series], times: list[datetime]) -> None:
    unit = panel["fieldConfig"]["defaults"].get("unit", "none")
    for n, one in enumerate(series):
        style = style_of(panel, one.label, PALETTE[n % len(PALETTE)])
        line = (0, (4, 3)) if style.dashed else "-"
        ax.plot(times, one.values, color=style.color, lw=1.6, ls=line, label=one.label)
        ax.fill_between(times, one.values, color=style.color, alpha=style.fill, lw=0)
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(lambda value, _: format_value(value, unit))
    ax.yaxis.set_major_locator(plt.MaxNLocator(5, integer=unit == "none"))
    ax.set_xlim(times[0], times[-1])
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=4, maxticks=8))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
    ax.grid(color=GRID, lw=0.8)
    ax.tick_params(colors=MUTED, labelsize=7.5, length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_facecolor(PANEL)
    legend = {"fontsize": 7.5, "labelcolor": TEXT, "handlelength": 1.6, "columnspacing": 1.2}
    ax.legend(loc="upper left", bbox_to_anchor=(0, -0.1), ncol=min(len(series), 8), frameon=False, **legend)


def draw_stat(ax: Axes, panel: dict[str, Any], series: list[Series]) -> None:
    """The last value of each series, mapped and coloured as the panel's field config says."""
    defaults = panel["fieldConfig"]["defaults"]
    mappings = defaults.get("mappings", [])
    value_map = mappings[0]["options"] if mappings else {}
    background = panel["options"]["colorMode"] == "background"
    ax.set_axis_off()
    for n, one in enumerate(series):
        last = next((v for v in reversed(one.values) if not math.isnan(v)), math.nan)
        mapped = value_map.get(f"{last:g}")
        text = mapped["text"] if mapped else format_value(last, defaults.get("unit", "none"))
        color = COLORS[mapped["color"] if mapped else threshold_color(defaults["thresholds"]["steps"], last)]
        bottom, height = 1 - (n + 1) / len(series), 1 / len(series)
        if background:
            ax.add_patch(
                FancyBboxPatch((0, bottom), 1, height, "round,pad=0,rounding_size=0.02", color=color)
            )
        middle = bottom + height / 2
        value_color, name_color = (BACKGROUND, BACKGROUND) if background else (color, MUTED)
        ax.text(
            0.5, middle + 0.1, text, ha="center", va="center", fontsize=19, weight="bold", color=value_color
        )
        ax.text(0.5, middle - 0.28, one.label, ha="center", va="center", fontsize=7, color=name_color)


def threshold_color(steps: list[dict[str, Any]], value: float) -> str:
    color = steps[0]["color"]
    for step in steps[1:]:
        if value >= step["value"]:
            color = step["color"]
    return color


@dataclass(frozen=True)
class Layout:
    """Grafana's 24-column grid on a figure; boxes are given in inches from the top-left corner."""

    rows: int
    width: float = 17.0
    unit_height: float = 0.36
    header: float = 0.75
    margin: float = 0.12
    gap: float = 0.08

    @property
    def height(self) -> float:
        return self.header + self.rows * self.unit_height + self.margin

    def panel(self, grid: dict[str, int]) -> tuple[float, float, float, float]:
        """left, top, width, height of a panel's frame."""
        column = (self.width - 2 * self.margin) / 24
        left = self.margin + grid["x"] * column + self.gap / 2
        top = self.header + grid["y"] * self.unit_height + self.gap / 2
        return left, top, grid["w"] * column - self.gap, grid["h"] * self.unit_height - self.gap

    def box(self, left: float, top: float, width: float, height: float) -> tuple[float, float, float, float]:
        """The box as figure fractions: left, bottom, width, height."""
        return left / self.width, 1 - (top + height) / self.height, width / self.width, height / self.height


def draw_panel(
    fig: Figure, layout: Layout, panel: dict[str, Any], series: list[Series], times: list[datetime]
) -> None:
    """The frame, the title and the info mark, then the stat or the graph inside."""
    left, top, width, height = layout.panel(panel["gridPos"])
    x, y, w, h = layout.box(left, top, width, height)
    frame = FancyBboxPatch((x, y), w, h, "round,pad=0,rounding_size=0.003", transform=fig.transFigure)
    frame.set(facecolor=PANEL, edgecolor=BORDER, lw=0.8, zorder=-1)
    fig.patches.append(frame)
    title_x, title_y, _, _ = layout.box(left + 0.1, top + 0.17, 0, 0)
    fig.text(title_x, title_y, panel["title"], color=TEXT, fontsize=9.5, weight="bold", va="center")
    info_x, _, _, _ = layout.box(left + width - 0.14, 0, 0, 0)
    info = {"boxstyle": "circle,pad=0.2", "facecolor": "none", "edgecolor": MUTED, "lw": 0.7}
    fig.text(info_x, title_y, "i", color=MUTED, fontsize=6, ha="center", va="center", bbox=info)
    if panel["type"] == "stat":
        draw_stat(
            fig.add_axes(layout.box(left + 0.08, top + 0.34, width - 0.16, height - 0.42)), panel, series
        )
    else:
        ax = fig.add_axes(layout.box(left + 0.72, top + 0.36, width - 0.87, height - 0.88))
        draw_timeseries(ax, panel, series, times)


def render(dashboard: dict[str, Any], scrapes: list[Scrape], output: Path, subtitle: str) -> None:
    """Every panel of the dashboard, at its grid position, from the panel's query over the scrapes."""
    layout = Layout(rows=max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dashboard["panels"]))
    fig = plt.figure(figsize=(layout.width, layout.height), facecolor=BACKGROUND)
    times = [datetime.fromtimestamp(scrape.at) for scrape in scrapes]
    where = {"model": loaded_models(scrapes)}
    x, y, _, _ = layout.box(layout.margin, 0.3, 0, 0)
    fig.text(x, y, dashboard["title"], color=TEXT, fontsize=15, weight="bold", va="center")
    x, y, _, _ = layout.box(layout.margin, 0.58, 0, 0)
    fig.text(x, y, subtitle, color=MUTED, fontsize=8.5, va="center")
    for panel in dashboard["panels"]:
        series = PANELS[panel["title"]](scrapes, where)
        if not any(not math.isnan(v) for one in series for v in one.values):
            print(f"WARNING: panel {panel['title']!r} has no data")
        draw_panel(fig, layout, panel, series, times)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=100, facecolor=BACKGROUND)
    plt.close(fig)
