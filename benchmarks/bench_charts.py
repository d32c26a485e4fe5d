"""Measure chart candidates: data -> Strips for a 2,000-point series at 120x40.

Not a test (never asserted). Run from the repository root: python -m benchmarks.bench_charts [--long]
Each candidate fills a headless 120x40 app; per iteration the data changes (so
no cache can answer) and we time everything from new data to the widget's
rendered lines. Median of REPEATS. Numbers: docs/performance.md, "Chart candidates".
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics
import sys
import time

from textual.app import App
from textual.geometry import Region

from danlu.tui.plot import PlotSpec
from danlu.tui.series import Series
from danlu.tui.widgets.chart import Chart

W, H, N, REPEATS = 120, 40, 2000, 30
REGION = Region(0, 0, W, H)


def data(seed: int, n: int = N):
    rnd = random.Random(seed)
    xs = list(range(n))
    ys = [2.3 * math.exp(-i / 400) + 0.1 + 0.1 * rnd.random() for i in xs]
    return xs, ys


def median_ms(fn) -> float:
    times = []
    for i in range(REPEATS):
        t = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


class One(App):
    def __init__(self, widget):
        super().__init__()
        self.widget = widget

    def compose(self):
        yield self.widget


async def bench_ours(series_len: int | None = None) -> float:
    chart = Chart()
    async with One(chart).run_test(size=(W, H)) as pilot:
        await pilot.pause()
        if series_len is None:
            def one(i):
                s = Series()
                s.extend(*data(i))
                chart.plot(PlotSpec(lines=[(s, "train")]), key=i)
                chart.render_lines(REGION)
            return median_ms(one)
        s = Series()
        for step in range(series_len):
            s.append(step, 1.0 / (1 + step) + (step % 7) * 1e-3)

        def redraw(i):  # the store is already full: this is the per-frame cost
            chart.plot(PlotSpec(lines=[(s, "train")]), key=("long", i))
            chart.render_lines(REGION)
        return median_ms(redraw)


async def bench_plotext() -> float:
    from textual_plotext import PlotextPlot
    w = PlotextPlot()
    async with One(w).run_test(size=(W, H)) as pilot:
        await pilot.pause()

        def one(i):
            w.plt.clear_data()
            w.plt.plot(*data(i), marker="braille")
            w.refresh()
            w.render_lines(REGION)
        return median_ms(one)


async def bench_textual_plot() -> float:
    from textual_hires_canvas import Canvas, HiResMode
    from textual_plot import PlotWidget
    w = PlotWidget()
    async with One(w).run_test(size=(W, H)) as pilot:
        await pilot.pause()
        canvas = w.query_one("#plot", Canvas)

        def one(i):
            w.clear()
            w.plot(*data(i), hires_mode=HiResMode.BRAILLE)
            w._needs_rerender = True
            w.render()
            canvas.refresh()
            canvas.render_lines(Region(0, 0, *canvas.size))
        return median_ms(one)


async def main() -> None:
    print(f"{N} points at {W}x{H}, median of {REPEATS} (ms), python {sys.version.split()[0]}")
    print(f"ours (braille, Series + line API): {await bench_ours():.1f}")
    for n in (1_000, 1_000_000, 10_000_000) if "--long" in sys.argv else (1_000, 100_000):
        print(f"ours, redraw with {n:,} steps stored: {await bench_ours(n):.1f}")
    for name, fn in (("textual-plotext", bench_plotext), ("textual-plot", bench_textual_plot)):
        try:
            print(f"{name}: {await fn():.1f}")
        except ImportError as e:
            print(f"{name}: not installed ({e.name})")


if __name__ == "__main__":
    asyncio.run(main())
