"""The LR range test's curve as plain text: loss against log LR in braille, and its table.

One renderer for the three places that show it (`danlu lr-find`, the dashboard's dialog, the
editor's LR preview), so they read alike. Torch- and Textual-free.
"""

from __future__ import annotations

import math
from typing import Any

from .braille import BrailleCanvas
from .format import num

LABEL_W = 8


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def render_curve(lrs: list[float], losses: list[float | None], smoothed: list[float],
                 suggestion: float | None, min_over_10: float | None,
                 width: int = 72, height: int = 14) -> list[str]:
    """Lines of text: each step's loss as dots, the smoothed curve over them, `^` under the
    suggested LR and `v` over min/10 on the x axis (log LR)."""
    pts = [(math.log10(lr), v) for lr, v in zip(lrs, losses) if lr > 0 and _finite(v)]
    if len(pts) < 2:
        return ["(too few finite losses to draw a curve)"]
    plot_w = max(10, width - LABEL_W - 1)
    x0, x1 = pts[0][0], pts[-1][0]
    curve = [v for v in smoothed if _finite(v)]
    lo = min(min(v for _, v in pts), min(curve, default=math.inf))
    if curve:
        # the divergence at the end would squash the descent: the top is half again above the
        # curve's top before its lowest point; the rise past that is cut at the top edge
        i_min = min(range(len(curve)), key=curve.__getitem__)
        before = max(curve[:i_min + 1])
        hi = min(max(curve), before + 0.5 * (before - lo))
    else:
        hi = max(v for _, v in pts)
    hi = max(hi, lo + 1e-12)
    canvas = BrailleCanvas(plot_w, height)
    line = BrailleCanvas(plot_w, height)

    def dx(x: float) -> int:
        return 0 if x1 == x0 else round((x - x0) / (x1 - x0) * (canvas.dots_w - 1))

    def dy(v: float) -> int:
        v = min(max(v, lo), hi)
        return round((hi - v) / (hi - lo) * (canvas.dots_h - 1))

    for x, v in pts:
        canvas.dot(dx(x), dy(v), None)
    prev = None
    for (x, _), v in zip(pts, curve):
        cur = (dx(x), dy(v))
        if prev is not None and cur[0] > prev[0]:
            for cx in range(prev[0], cur[0] + 1):  # straight segments between the curve's points
                t = (cx - prev[0]) / (cur[0] - prev[0])
                line.dot(cx, round(prev[1] + t * (cur[1] - prev[1])), None)
        else:
            line.dot(*cur, None)
        prev = cur
    canvas.overlay(line)
    rows = ["".join(seg.text for seg in row) for row in canvas.rows()]
    out = []
    for r, text in enumerate(rows):
        label = num(hi) if r == 0 else num(lo) if r == height - 1 else ""
        out.append(f"{label:>{LABEL_W}}│{text}")
    marks = [" "] * plot_w
    for lr, ch in ((min_over_10, "v"), (suggestion, "^")):
        if lr is not None and lr > 0 and x0 <= math.log10(lr) <= x1:
            marks[min(plot_w - 1, dx(math.log10(lr)) // 2)] = ch
    out.append(" " * LABEL_W + "└" + "".join(marks))
    axis = [" "] * plot_w
    for pos, x in ((0, x0), ((plot_w - 1) // 2, (x0 + x1) / 2), (plot_w - 1, x1)):
        label = f"{10 ** x:.0e}"
        start = min(max(pos - len(label) // 2, 0), plot_w - len(label))
        axis[start:start + len(label)] = label
    out.append(" " * (LABEL_W - 2) + "lr " + "".join(axis))
    return out


def legend(suggestion: float | None, min_over_10: float | None) -> str:
    """What the marks under the plot mean."""
    parts = ["x: lr (log scale); dots: each step's loss; line: the smoothed curve"]
    if suggestion is not None:
        parts.append(f"^ suggestion {num(suggestion)}")
    if min_over_10 is not None:
        parts.append(f"v min/10 {num(min_over_10)}")
    return "; ".join(parts)


def table(lrs: list[float], losses: list[float | None], smoothed: list[float], rows: int = 12) -> list[str]:
    """About `rows` evenly spaced rows of lr, loss, smoothed loss, the last one always included."""
    n = len(lrs)
    if n == 0:
        return []
    idx = sorted({round(i * (n - 1) / max(1, rows - 1)) for i in range(min(rows, n))})
    out = [f"{'lr':>10}  {'loss':>10}  {'smoothed':>10}"]
    for i in idx:
        s = smoothed[i] if i < len(smoothed) else None
        out.append(f"{num(lrs[i]):>10}  {num(losses[i]):>10}  {num(s):>10}")
    return out


def summary(suggestion: float | None, min_over_10: float | None, rule: str, stopped: str) -> list[str]:
    """The suggestion, the rule that gave it, min/10 beside it, and why the sweep ended early."""
    out = []
    if suggestion is None:
        out.append("no suggestion: the curve is too short to read (more steps, or a wider start..end)")
    else:
        out.append(f"suggested lr: {num(suggestion)}  ({rule})")
    if min_over_10 is not None:
        out.append(f"min/10:       {num(min_over_10)}  (the LR of the curve's lowest point, divided by 10)")
    if stopped:
        out.append(f"stopped early: {stopped}")
    return out
