"""What does the live dashboard cost a training run? Measured inside one run, window by window.

Not a test (never asserted). Run from the repository root:

    python -m benchmarks.dashboard_ab                    # tiny MLP, 3 s windows, ~150 s
    python -m benchmarks.dashboard_ab --regime cnn --seconds 120

benchmarks.overhead compares whole runs of each variant, seconds apart; on a shared VM
whose speed swings by 2x within a minute, its paired ratios carry ±10% intervals, wider
than the few percent to be measured. Here one long run with the dashboard live
(create_app inside App.run_test at 120x40, the engine started after the first frame, as
in benchmarks.overhead's variant c) alternates, every `--window` seconds, between

  on   the dashboard as shipped: it drains the channel, folds, redraws panels and charts
  off  its drain switched off (Textual's own loop still runs; the 'ci' control)

and samples, at each switch, the training thread's step count and CPU clock and the UI
thread's CPU clock from a plain sampler thread. Each `on` window is paired with the mean
of the two `off` windows around it, which cancels the box's slow drifts; the medians of
those ratios come with distribution-free 95% intervals (benchmarks.common.median_ci).

The ratio of steps per wall second (on/off) splits exactly into two factors:
  on-cpu     the training thread's CPU time over wall time: what it lost waiting for the
             GIL while the UI thread ran Python (nothing else differs between windows)
  cpu/step   steps per CPU second of the training thread: anything that made each of its
             steps slower (cache, allocator, interpreter state shared with the UI thread)
If the second factor is 1 within its interval, the dashboard costs the training loop the
GIL time its UI thread takes and nothing more.

An `on` window does somewhat more than a steady second of the dashboard: its first tick
drains the `off` window's backlog, and the charts (at most every CHARTS_MAX_S, with the
fold of every step since the last frame) land in on-windows only; the UI-busy column
says how much the UI thread worked in each kind of window.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import threading
import time

import torch

from benchmarks.common import load, machine, median_ci
from benchmarks.overhead import EPOCH_STEPS, REGIMES, make_config
from danlu.engine.control.channel import Channel
from danlu.engine.loop.runner import start_engine
from danlu.engine.loop.trainer import Trainer

_orig_train = Trainer._train
_training = threading.Event()


def _flagged_train(self: Trainer) -> None:
    self._bench_ident = threading.get_ident()
    _training.set()
    _orig_train(self)


Trainer._train = _flagged_train  # one extra call per run, nothing per step


def _clock(ident: int) -> float:
    return time.clock_gettime(time.pthread_getcpuclockid(ident))


def run(regime: str, seconds: float, window: float, steps_per_s: float) -> list[dict]:
    """One long run; a sample dict per window boundary."""
    import danlu.tui.screens.dashboard as dash
    from danlu.tui.app import create_app

    steps = int(seconds * steps_per_s)
    REGIMES[regime]["steps"] = steps
    on = {"value": False}  # the sampler turns it on at the first window
    real_tick = dash.DashboardScreen.tick

    def tick(screen):
        if on["value"]:
            real_tick(screen)

    dash.DashboardScreen.tick = tick
    samples: list[dict] = []
    try:
        with tempfile.TemporaryDirectory() as out:
            cfg = make_config(regime, out)
            channel = Channel()
            app = create_app(channel, None, title="bench")
            ui_ident = threading.get_ident()

            def sampler(thread: threading.Thread) -> None:
                _training.wait()
                trainer = thread.trainer
                ident = trainer._bench_ident
                while thread.is_alive():
                    on["value"] = not on["value"]  # the window from here to the next sample
                    samples.append(dict(t=time.perf_counter(), cpu=_clock(ident), step=trainer.step,
                                        ui=_clock(ui_ident), on=on["value"]))
                    time.sleep(window)

            async def go():
                async with app.run_test(size=(120, 40)) as pilot:
                    await pilot.pause()
                    app.engine_thread = start_engine(cfg, channel)
                    s = threading.Thread(target=sampler, args=(app.engine_thread,), name="bench-sampler")
                    s.start()
                    await asyncio.get_running_loop().run_in_executor(None, app.engine_thread.join)
                    s.join()
                    await pilot.pause()

            asyncio.run(go())
    finally:
        dash.DashboardScreen.tick = real_tick
    return samples


def windows(samples: list[dict]) -> list[dict]:
    """Per window between two samples: its kind and rates (the last, partial one dropped)."""
    out = []
    for a, b in zip(samples, samples[1:]):
        dt, cpu, n = b["t"] - a["t"], b["cpu"] - a["cpu"], b["step"] - a["step"]
        if n <= 0 or cpu <= 0:
            continue
        out.append(dict(on=a["on"], rate=n / dt, cpu_rate=n / cpu, on_cpu=cpu / dt, ui=(b["ui"] - a["ui"]) / dt))
    return out[2:-1]  # the first windows hold the run's warm-up (first frames, first epoch)


def paired(ws: list[dict], key: str) -> list[float]:
    """Each on-window over the mean of the off-windows either side of it."""
    return [w[key] / ((prev[key] + nxt[key]) / 2)
            for prev, w, nxt in zip(ws, ws[1:], ws[2:]) if w["on"] and not prev["on"] and not nxt["on"]]


def report(regime: str, ws: list[dict], window: float) -> str:
    r = REGIMES[regime]
    print(f"\n{regime}: {r['model']['name']} {r['model']['args']}, batch {r['batch']}, {r['data']}, "
          f"{len(ws)} windows of {window:.0f} s")
    print(f"{'window':6} {'n':>3} {'steps/s':>8} {'steps/cpu-s':>12} {'on-cpu':>7} {'UI busy':>8}")
    for kind in (False, True):
        sel = [w for w in ws if w["on"] == kind]
        med = {k: statistics.median(w[k] for w in sel) for k in ("rate", "cpu_rate", "on_cpu", "ui")}
        print(f"{'on' if kind else 'off':6} {len(sel):>3} {med['rate']:8.1f} {med['cpu_rate']:12.1f}"
              f" {100 * med['on_cpu']:6.1f}% {100 * med['ui']:7.2f}%")
    parts = []
    for key, label in (("rate", "steps/s"), ("on_cpu", "on-cpu"), ("cpu_rate", "cpu/step")):
        xs = paired(ws, key)
        lo, hi = median_ci(xs)
        parts.append(f"{label} {statistics.median(xs):.3f} [{lo:.3f}-{hi:.3f}]")
    print(f"on/off paired ({len(paired(ws, 'rate'))} pairs), median [95% CI]: " + ", ".join(parts))
    return f"{regime}: on/off " + " ".join(p.split(" [")[0].replace(" ", "=") for p in parts)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--regime", choices=list(REGIMES), default="mlp")
    p.add_argument("--seconds", type=float, default=150.0, help="about how long the run trains")
    p.add_argument("--window", type=float, default=3.0, help="seconds on, then off, then on...")
    p.add_argument("--steps-per-s", type=float, default=None,
                   help="the regime's speed on this box, to size the run (default: 700 mlp, 80 cnn)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (as benchmarks.overhead)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rate = args.steps_per_s or {"mlp": 700.0, "cnn": 80.0}[args.regime]
    print(machine())
    print(f"epochs of {EPOCH_STEPS} steps over one in-memory dataset, as benchmarks.overhead")
    line = report(args.regime, windows(run(args.regime, args.seconds, args.window, rate)), args.window)
    print(f"\nload avg at the end: {load()}")
    print(line)


if __name__ == "__main__":
    main()
