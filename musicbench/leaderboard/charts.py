"""Geometry of the board's SVG charts (drawn by templates/per_instrument.svg and distribution.svg): positions in px."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from musicbench.leaderboard.board import Table

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")


@dataclass
class Tick:
    """A vertical grid line at `x` (px) labelled `value`."""

    x: float
    value: float


@dataclass
class Bar:
    """One method's mean NSDR of one instrument: a rectangle with its tooltip."""

    x: float
    y: float
    width: float
    fill: str
    name: str
    instrument: str
    value: float


@dataclass
class BarGroup:
    """One instrument's label (centred at `y`) and its bars."""

    y: float
    instrument: str
    bars: list[Bar]


@dataclass
class LegendEntry:
    y: int
    fill: str
    name: str


@dataclass
class BarChart:
    """Grouped horizontal bars of mean NSDR (dB) per instrument, one bar per method; `zero` is x of 0 dB."""

    width: int
    height: int
    top: int
    bottom: int
    bar_height: int
    label_x: int
    legend_x: int
    ticks: list[Tick]
    zero: float
    groups: list[BarGroup]
    legend: list[LegendEntry]


@dataclass
class Lane:
    """One method's per-item NSDR: range line, quartile box, median mark and a dot per item (x, y)."""

    y: float
    label: str
    name: str
    color: str
    low: float
    high: float
    q1: float
    box_width: float
    median_x: float
    median: float
    dots: list[tuple[float, float]]


@dataclass
class DistributionChart:
    """Per method the per-item NSDR (dB): one `Lane` each; `zero` is x of 0 dB."""

    width: int
    height: int
    top: int
    bottom: int
    label_x: int
    caption_x: float
    ticks: list[Tick]
    zero: float
    lanes: list[Lane]


def _ticks(low: float, high: float, count: int = 6) -> list[float]:
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low]
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw), default=raw)
    start = math.ceil(low / step) * step
    return [round(start + i * step, 10) for i in range(int((high - start) / step + 1e-9) + 1)]


def _range(values: list[float | None]) -> tuple[float, float]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    low, high = (min(finite + [0.0]), max(finite + [0.0])) if finite else (-1.0, 1.0)
    if high - low < 1e-9:
        low, high = low - 1, high + 1
    pad = 0.05 * (high - low)
    return low - pad, high + pad


def colors(table: Table) -> dict[str, str]:
    """A palette colour per run folder of `table`, in row order."""
    return {row.folder: PALETTE[i % len(PALETTE)] for i, row in enumerate(table.rows)}


def per_instrument_chart(table: Table) -> BarChart | None:
    """The per-instrument bars of `table` (None when no row has per-instrument scores)."""
    rows = [r for r in table.rows if r.per_instrument]
    if not rows or not table.instruments:
        return None
    fills = colors(table)
    low, high = _range([r.per_instrument.get(i, {}).get("nsdr") for r in rows for i in table.instruments])
    left, width, bar, gap = 130, 520, 11, 10
    top = 16 * len(rows) + 32  # the legend comes first, above the groups, where it is seen before them
    group = bar * len(rows) + gap
    bottom = top + group * len(table.instruments)

    def x(value: float) -> float:
        return left + (value - low) / (high - low) * width

    groups = []
    for i, instrument in enumerate(table.instruments):
        y0 = top + i * group
        bars = []
        for j, row in enumerate(rows):
            value = row.per_instrument.get(instrument, {}).get("nsdr")
            if value is not None:
                x0, x1 = sorted((x(0.0), x(value)))
                bars.append(Bar(x0, y0 + j * bar, max(x1 - x0, 0.5), fills[row.folder], row.name, instrument, value))
        groups.append(BarGroup(y0 + group / 2, instrument, bars))
    legend = [LegendEntry(14 + 16 * j, fills[row.folder], row.name) for j, row in enumerate(rows)]
    return BarChart(width=left + width + 70, height=bottom + 12, top=top, bottom=bottom,
                    bar_height=bar - 2, label_x=left - 6, legend_x=left,
                    ticks=[Tick(x(t), t) for t in _ticks(low, high)], zero=x(0.0), groups=groups, legend=legend)


def distribution_chart(table: Table) -> DistributionChart | None:
    """The per-item NSDR distribution of `table` (None when no row has per-item scores)."""
    rows = [r for r in table.rows if r.per_item_nsdr]
    if not rows:
        return None
    fills = colors(table)
    low, high = _range([v for r in rows for v in r.per_item_nsdr.values()])
    left, width, lane, top = 180, 520, 26, 22
    height = top + lane * len(rows) + 24

    def x(value: float) -> float:
        return left + (value - low) / (high - low) * width

    lanes = []
    for j, row in enumerate(rows):
        values = np.array(sorted(row.per_item_nsdr.values()))
        q1, median, q3 = np.quantile(values, [0.25, 0.5, 0.75])
        yc = top + j * lane + lane / 2
        label = row.name if len(row.name) <= 28 else row.name[:27] + "…"
        dots = [(x(value), yc + ((k * 7919) % 11 - 5) * 1.1) for k, value in enumerate(values)]
        lanes.append(Lane(y=yc, label=label, name=row.name, color=fills[row.folder], low=x(values[0]),
                          high=x(values[-1]), q1=x(q1), box_width=max(x(q3) - x(q1), 0.5), median_x=x(median),
                          median=float(median), dots=dots))
    return DistributionChart(width=left + width + 20, height=height, top=top, bottom=top + lane * len(rows),
                             label_x=left - 8, caption_x=left + width / 2,
                             ticks=[Tick(x(t), t) for t in _ticks(low, high)], zero=x(0.0), lanes=lanes)
