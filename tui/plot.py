"""Lay out a chart (y labels, braille plot, step axis) from decimated series.

The caller names each thing by a role ("train", "ema", "val", ...) and passes
one rich Style per role, so colours come from the widget's CSS and follow the
theme. Cost is bounded by the plot size plus each Series' fixed capacity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from rich.segment import Segment
from rich.style import Style

from .braille import BrailleCanvas
from .format import num
from .series import Series

LABEL_W = 8  # "1.23e-04" fits; the plot starts after it


@dataclass
class PlotSpec:
    """What one chart draws, in step (x) and value (y) coordinates."""

    lines: list[tuple[Series, str]] = field(default_factory=list)          # series, role
    points: list[tuple[int, float, str, str]] = field(default_factory=list)  # step, value, role, glyph
    hlines: list[tuple[float, str]] = field(default_factory=list)         # value, role
    vmarks: list[tuple[int, str]] = field(default_factory=list)           # step, role
    log: bool = False
    x0: float | None = None   # default: first step of any line
    x1: float | None = None   # default: last step of any line
    empty_text: str = "waiting for data…"


def _y(v: float, log: bool) -> float | None:
    if v is None or not math.isfinite(v):
        return None
    if log:
        return math.log10(v) if v > 0 else None
    return v


def _col_y(c, log: bool):
    """(lo, hi, last) in plot units, or None if nothing drawable."""
    if c is None:
        return None
    lo, hi, last = c
    if log:
        if hi <= 0:
            return None
        floor = hi if last <= 0 else min(last, hi)
        lo = lo if lo > 0 else floor
        last = last if last > 0 else floor
        return math.log10(lo), math.log10(hi), math.log10(last)
    return c


def x_range(spec: PlotSpec) -> tuple[float, float] | None:
    starts = [s.first_step for s, _ in spec.lines if s.first_step is not None]
    ends = [s.last_step for s, _ in spec.lines if s.last_step is not None]
    if not starts:
        return None
    x0 = spec.x0 if spec.x0 is not None else min(starts)
    x1 = spec.x1 if spec.x1 is not None else max(ends)
    return (x0, x1) if x1 > x0 else (x0, x0 + 1)


def render_plot(spec: PlotSpec, width: int, height: int,
                styles: dict[str, Style], base: Style | None = None) -> list[list[Segment]]:
    """Rows of Segments, exactly `height` rows of `width` cells."""
    plot_w, plot_h = width - LABEL_W - 1, height - 1
    blank = [[Segment(" " * max(width, 0), base)] for _ in range(max(height, 0))]
    xr = x_range(spec)
    if plot_w < 4 or plot_h < 2 or xr is None:
        if blank and xr is None and width > 0:
            text = spec.empty_text[:width].center(width)
            blank[len(blank) // 2] = [Segment(text, _st(styles, "axis", base))]
        return blank
    x0, x1 = xr
    canvas = BrailleCanvas(plot_w, plot_h)
    n = canvas.dots_w
    cols = []
    for series, role in spec.lines:
        cols.append(([_col_y(c, spec.log) for c in series.columns(x0, x1, n)], role))

    # y range over everything visible, so thresholds and val points stay on the chart
    ys = [v for cs, _ in cols for c in cs if c is not None for v in (c[0], c[1])]
    ys += [y for step, v, _r, _g in spec.points if x0 <= step <= x1
           for y in [_y(v, spec.log)] if y is not None]
    ys += [y for v, _ in spec.hlines for y in [_y(v, spec.log)] if y is not None]
    if not ys:
        return render_plot(PlotSpec(empty_text="no finite values yet"), width, height, styles, base)
    y_lo, y_hi = min(ys), max(ys)
    if y_hi - y_lo < 1e-12:
        pad = abs(y_hi) * 0.1 or 1.0
        y_lo, y_hi = y_lo - pad, y_hi + pad
    dh = canvas.dots_h - 1

    def row(v: float) -> int:
        return int(round((y_hi - v) / (y_hi - y_lo) * dh))

    def xcol(step: float) -> int:
        return int(round((step - x0) / (x1 - x0) * (n - 1)))

    for step, role in spec.vmarks:
        if x0 <= step <= x1:
            canvas.vspan(xcol(step), 0, dh, _st(styles, role, base), every=2)
    # Lines after a "-band" role (a faint min..max range) go on their own layer, laid over the
    # band cell by cell, so a smoothed line reads as a line and not as more band.
    layer, top_layer = canvas, None
    for cs, role in cols:
        if layer is canvas and any(r.endswith("-band") for _, r in cols[:cols.index((cs, role))]):
            layer = top_layer = BrailleCanvas(plot_w, plot_h)
        style = _st(styles, role, base)
        prev = prev_x = None
        for x, c in enumerate(cs):
            if c is None:
                continue
            top, bottom, last = row(c[1]), row(c[0]), row(c[2])
            if prev is not None:
                # Fewer points than dot columns (early in a run): draw straight through the
                # empty columns to where this column's span begins, so it reads as a line.
                entry = min(max(prev, top), bottom)
                for gx in range(prev_x + 1, x):
                    r = int(round(prev + (entry - prev) * (gx - prev_x) / (x - prev_x)))
                    layer.vspan(gx, prev, r, style)
                    prev = r
                top, bottom = min(top, prev), max(bottom, prev)  # join: no gap between columns
            layer.vspan(x, top, bottom, style)
            prev, prev_x = last, x
    if top_layer is not None:
        canvas.overlay(top_layer)
    # thresholds over the lines: a clip level hidden in a dense band is no use
    for v, role in spec.hlines:
        y = _y(v, spec.log)
        if y is not None:
            canvas.hline(row(y), _st(styles, role, base))
    for step, v, role, glyph in spec.points:
        y = _y(v, spec.log)
        if y is not None and x0 <= step <= x1:
            canvas.glyph(xcol(step), row(y), glyph, _st(styles, role, base))

    axis = _st(styles, "axis", base)
    label_rows = {0: y_hi, plot_h - 1: y_lo}
    if plot_h >= 5:
        label_rows[(plot_h - 1) // 2] = (y_hi + y_lo) / 2
    out = []
    for r, segs in enumerate(canvas.rows(base)):
        if r in label_rows:
            v = label_rows[r]
            label = num(10 ** v if spec.log else v)
            out.append([Segment(f"{label:>{LABEL_W}}┤", axis)] + segs)
        else:
            out.append([Segment(" " * LABEL_W + "│", axis)] + segs)
    out.append([Segment(_x_axis(x0, x1, plot_w), axis)])
    return out


def _x_axis(x0: float, x1: float, plot_w: int) -> str:
    """'└' then step labels at the left, middle and right of the plot."""
    line = [" "] * plot_w
    ticks = [(0, x0), (plot_w - 1, x1)]
    if plot_w >= 30:
        ticks.insert(1, ((plot_w - 1) // 2, (x0 + x1) / 2))
    for pos, step in ticks:
        label = _step_label(step)
        start = min(max(pos - len(label) // 2, 0), plot_w - len(label))
        if all(c == " " for c in line[max(start - 1, 0):start + len(label) + 1]):
            line[start:start + len(label)] = label
    return " " * LABEL_W + "└" + "".join(line)


def _step_label(step: float) -> str:
    s = int(round(step))
    if s >= 10_000_000:
        return f"{s / 1e6:.0f}M"
    if s >= 100_000:
        return f"{s / 1e3:.0f}k"
    return str(s)


def _st(styles: dict[str, Style], role: str, base: Style | None) -> Style | None:
    return styles.get(role, base)
