"""Does the dashboard cost the same at step 10^3 and 10^7, and keep up with a fast run?

Not a test (never asserted). Run from the repository root:

    python -m benchmarks.ui_render              # 10^3, 10^5, 10^7 steps of history
    python -m benchmarks.ui_render --quick      # 10^3, 10^5, 10^6 (a minute less)

1. Redraw: each chart panel (loss, LR, grad norm) alone in a headless 120x40 app,
   over a RunState fed synthetically with N steps (Metrics events folded the way the
   EventPump folds them). Per repeat the state's version bumps, so the chart's cache
   cannot answer: timed is panel.show(state) (builds the PlotSpec) plus the Chart's
   render_lines over its whole region (columns from the Series, braille, axes, Strips).
2. Memory: process RSS after a full gc at 10^5 and at 10^7 steps of history.
3. UI duty: the real dashboard with a producer at 1,000 steps/s (log_every 10); the UI
   thread's CPU time over wall time, the full (chart) frames drawn and their median cost,
   for the shipped pacing (drain at TICK_S, panels at REDRAW_S, charts spaced by
   UI_BUDGET) and for the older ones. Under the GIL, this is roughly what the dashboard
   takes from a Python-bound engine.
4. EventPump: the real dashboard (create_app, no engine) at 120x40, a producer thread
   emitting Metrics at a fixed rate for some seconds; the channel's backlog is sampled
   every 50 ms. Keeping up means the backlog stays flat (no merges) and every step
   arrives in the RunState.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import random
import statistics
import threading
import time

from textual.app import App
from textual.geometry import Region

from benchmarks.common import load, machine, summary
from danlu.engine.control import events as ev
from danlu.engine.control.channel import Channel
from danlu.tui.run_state import RunState
from danlu.tui.widgets.chart import Chart
from danlu.tui.widgets.grad_panel import GradPanel
from danlu.tui.widgets.loss_chart import LossChart
from danlu.tui.widgets.lr_panel import LrPanel

W, H, REPEATS = 120, 40, 30
BATCH = 10_000  # steps per synthetic Metrics event while filling the history


def metrics(first: int, n: int, rnd: random.Random) -> ev.Metrics:
    steps = list(range(first, first + n))
    loss = [2.3 * math.exp(-s / 2e5) + 0.1 + 0.05 * rnd.random() for s in steps]
    grad = [0.5 + rnd.random() for _ in steps]
    lr = [3e-3 * 0.5 * (1 + math.cos(math.pi * s / 1e7)) for s in steps]
    return ev.Metrics(steps=steps, loss=loss, grad_norm=grad, lr=lr, epoch=0, lrs=[lr[-1]], clipped=0,
                      phase="decay", steps_per_s=1000.0, samples_per_s=64000.0, elapsed=1.0, eta=1.0,
                      total_steps=10**7)


def fill(state: RunState, upto: int, rnd: random.Random) -> None:
    """Fold Metrics events into `state` until it holds steps 1..upto."""
    s = state.seen_steps + 1
    while s <= upto:
        n = min(BATCH, upto - s + 1)
        state.apply(metrics(s, n, rnd))
        s += n


class One(App):
    def __init__(self, widget):
        super().__init__()
        self.widget = widget

    def compose(self):
        yield self.widget


async def redraw_ms(panel_cls, state: RunState) -> list[float]:
    panel = panel_cls()
    async with One(panel).run_test(size=(W, H)) as pilot:
        await pilot.pause()
        chart = panel.query_one(Chart)
        times = []
        for _ in range(REPEATS + 1):
            state.version += 1  # new data as far as every cache can tell
            t = time.perf_counter()
            panel.show(state)
            chart.render_lines(Region(0, 0, *chart.size))
            times.append((time.perf_counter() - t) * 1000)
        assert chart.size.width > 0 and chart._lines, "the chart drew nothing"
        return times[1:]  # the first also builds styles


def rss_mb() -> float:
    import psutil
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


async def render_and_memory(sizes: list[int]) -> None:
    rnd = random.Random(0)
    state = RunState()
    panels = [("loss", LossChart), ("lr", LrPanel), ("grad", GradPanel)]
    rows, mem = [], {}
    for n in sizes:
        t = time.perf_counter()
        fill(state, n, rnd)
        fill_s = time.perf_counter() - t
        mem[n] = rss_mb()
        row = [n, fill_s, mem[n]]
        for _, cls in panels:
            row.append(summary(await redraw_ms(cls, state)))
        rows.append(row)
        print(f"  filled {n:,} steps in {fill_s:.1f}s, rss {mem[n]:.1f} MB", flush=True)
    print(f"\nRedraw of one chart panel at {W}x{H}, ms: median [min-max] of {REPEATS}")
    print(f"{'history (steps)':>16} " + " ".join(f"{name:>20}" for name, _ in panels) + f" {'rss MB':>8}")
    for n, _, rss, *cells in rows:
        print(f"{n:>16,} " + " ".join(f"{m:7.2f} [{lo:.2f}-{hi:.2f}]".rjust(20) for m, lo, hi in cells)
              + f" {rss:8.1f}")
    first, last = rows[0], rows[-1]
    for i, (name, _) in enumerate(panels):
        print(f"{name}: redraw at {last[0]:,} / at {first[0]:,} steps = {last[3 + i][0] / first[3 + i][0]:.2f}x")
    if 10**5 in mem:
        print(f"memory growth from 10^5 to {sizes[-1]:,} steps of history: {mem[sizes[-1]] - mem[10**5]:+.1f} MB")


async def pump(records_per_s: int, steps_per_event: int, seconds: float) -> dict:
    """Drive the real dashboard with a synthetic producer; report backlog and delivery."""
    from danlu.tui.app import create_app
    channel = Channel()
    app = create_app(channel, None, title="bench")
    produced = {"steps": 0, "events": 0, "t": 0.0}
    backlog: list[int] = []
    done = threading.Event()

    def producer():
        rnd = random.Random(1)
        events_per_s = records_per_s / steps_per_event
        t0 = time.perf_counter()
        step, i = 1, 0
        next_sample = t0
        while (now := time.perf_counter()) - t0 < seconds:
            due = int((now - t0) * events_per_s)
            while i < due:
                channel.emit(metrics(step, steps_per_event, rnd))
                step += steps_per_event
                i += 1
            if now >= next_sample:
                backlog.append(channel.pending())
                next_sample += 0.05
            time.sleep(0.0005)
        produced.update(steps=step - 1, events=i, t=time.perf_counter() - t0)
        done.set()

    async with app.run_test(size=(W, H)) as pilot:
        await pilot.pause()
        th = threading.Thread(target=producer, name="bench-producer")
        th.start()
        while not done.is_set():
            await asyncio.sleep(0.05)
        deadline = time.monotonic() + 5
        while channel.pending() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await pilot.pause()
        th.join()
        state = app.pump.state
        return dict(rate=produced["steps"] / produced["t"], events=produced["events"],
                    steps=produced["steps"], delivered=state.seen_steps, merged=channel.merged,
                    backlog_median=statistics.median(backlog), backlog_max=max(backlog),
                    backlog_last_s=max(backlog[-20:]), left=channel.pending())


async def pump_table(seconds: float) -> None:
    print(f"\nEventPump under a synthetic producer, dashboard live at {W}x{H}, {seconds:.0f} s each")
    print(f"{'records/s asked':>15} {'steps/event':>11} {'achieved':>9} {'events':>7} {'delivered':>16}"
          f" {'merged':>6} {'backlog median/max/last 1s':>27}")
    for rate, per in ((10_000, 10), (10_000, 100), (10_000, 1), (50_000, 10)):
        r = await pump(rate, per, seconds)
        ok = "all" if r["delivered"] == r["steps"] else f"{r['delivered']}/{r['steps']}"
        print(f"{rate:>15,} {per:>11} {r['rate']:>9,.0f} {r['events']:>7} {ok:>16} {r['merged']:>6}"
              f" {r['backlog_median']:>13.0f} / {r['backlog_max']:>4} / {r['backlog_last_s']:>4}", flush=True)


async def duty(tick_s: float, redraw_s: float, budget: float, seconds: float = 8.0, rate: int = 1000,
               per: int = 10) -> tuple[float, int, float]:
    """(UI thread CPU/wall, full frames drawn, their median CPU ms) while metrics stream in."""
    import danlu.tui.screens.dashboard as dash
    from danlu.tui.app import create_app
    names = ("TICK_S", "REDRAW_S", "UI_BUDGET")
    saved = [getattr(dash, n) for n in names]
    for n, v in zip(names, (tick_s, redraw_s, budget)):
        setattr(dash, n, v)
    frames: list[float] = []
    real_tick = dash.DashboardScreen.tick

    def tick(screen):  # the screen measures each full frame at the tick after it: record it there
        before = screen._frame_cpu
        real_tick(screen)
        if screen._frame_cpu != before and recording.is_set():
            frames.append(1000 * screen._frame_cpu)

    dash.DashboardScreen.tick = tick
    channel = Channel()
    app = create_app(channel, None, title="bench")
    stop, recording = threading.Event(), threading.Event()

    def producer():
        rnd, step, i, t0 = random.Random(0), 1, 0, time.perf_counter()
        while not stop.is_set():
            due = int((time.perf_counter() - t0) * rate / per)
            while i < due:
                channel.emit(metrics(step, per, rnd))
                step, i = step + per, i + 1
            time.sleep(0.002)
    try:
        async with app.run_test(size=(W, H)) as pilot:
            await pilot.pause()
            th = threading.Thread(target=producer, name="bench-producer")
            th.start()
            await asyncio.sleep(2.0)  # past the first frames
            recording.set()
            c0, w0 = time.thread_time(), time.perf_counter()
            await asyncio.sleep(seconds)  # one wakeup of our own, not a polling loop
            busy = (time.thread_time() - c0) / (time.perf_counter() - w0)
            recording.clear()
            stop.set()
            th.join()
    finally:
        dash.DashboardScreen.tick = real_tick
        for n, v in zip(names, saved):
            setattr(dash, n, v)
    return busy, len(frames), statistics.median(frames) if frames else float("nan")


async def duty_table(seconds: float = 8.0) -> None:
    import danlu.tui.screens.dashboard as dash
    print(f"\nUI thread busy (CPU/wall), dashboard at {W}x{H}, producer 1,000 steps/s in batches of 10, "
          f"{seconds:.0f} s each")
    print(f"{'pacing':70} {'busy':>6} {'chart frames':>13} {'frame ms':>9}")
    cases = [("drain 10 Hz, panels and charts every 0.1 s (first session)", 0.1, 0.1, 1e9),
             ("drain 10 Hz, panels 1 s, charts by a 1% budget (sessions 2-3 pacing)", 0.1, 1.0, 0.01),
             (f"drain {1 / dash.TICK_S:.0f} Hz, panels {dash.REDRAW_S:.0f} s, charts by a "
              f"{100 * dash.UI_BUDGET:.1f}% budget (now)", dash.TICK_S, dash.REDRAW_S, dash.UI_BUDGET)]
    for label, tick_s, redraw_s, budget in cases:
        busy, n, ms = await duty(tick_s, redraw_s, budget, seconds)
        print(f"{label:70} {100 * busy:5.1f}% {n:>13} {ms:9.1f}", flush=True)


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="stop the history at 10^6 steps")
    p.add_argument("--pump-seconds", type=float, default=10.0)
    p.add_argument("--skip-pump", action="store_true")
    p.add_argument("--only-duty", action="store_true", help="only the UI duty table")
    args = p.parse_args()
    print(machine())
    if args.only_duty:
        await duty_table()
        return
    await render_and_memory([10**3, 10**5, 10**6 if args.quick else 10**7])
    await duty_table()
    if not args.skip_pump:
        await pump_table(args.pump_seconds)
    print(f"\nload avg at the end: {load()}")


if __name__ == "__main__":
    asyncio.run(main())
