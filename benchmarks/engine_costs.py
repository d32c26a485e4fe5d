"""Where does the engine's own time go, per training step? Wall-clock timers around its hooks.

Not a test (never asserted). Run from the repository root:

    python -m benchmarks.engine_costs                 # the tiny-MLP regime of overhead.py
    python -m benchmarks.engine_costs --regime cnn --runs 3

Runs variant b of benchmarks/overhead.py (the Trainer headless) with perf_counter
timers wrapped around the engine's per-step hooks, and prints microseconds per
optimizer step and the share of the timed steps for each. Nested hooks overlap:
`_after_step` includes the `_flush` it calls, `LRSchedule.on_step` includes
`_advance`, and `_advance` is mostly torch's own `scheduler.step()`, which the bare
loop pays too. Timers add ~1 us per call; a profiler (cProfile, py-spy) shows the
same split with more distortion on code this small.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from benchmarks import overhead
from benchmarks.common import machine
from danlu.engine.control.channel import Channel
from danlu.engine.store.runlog import RunLog
from danlu.engine.build.schedule import LRSchedule
from danlu.engine.loop.trainer import Trainer

HOOKS = [(Trainer, "_boundary"), (Trainer, "_after_step"), (Trainer, "flush"), (RunLog, "train_steps"),
         (Channel, "emit"), (LRSchedule, "on_step"), (LRSchedule, "_advance")]


def instrument() -> dict[str, float]:
    spent: dict[str, float] = {}
    for cls, name in HOOKS:
        fn = getattr(cls, name)
        label = f"{cls.__name__}.{name}"

        def timed(*args, _fn=fn, _label=label, **kwargs):
            t = time.perf_counter()
            try:
                return _fn(*args, **kwargs)
            finally:
                spent[_label] = spent.get(_label, 0.0) + time.perf_counter() - t
        setattr(cls, name, timed)
    return spent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--regime", choices=list(overhead.REGIMES), default="mlp")
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(1)
    print(machine())
    spent = instrument()
    with tempfile.TemporaryDirectory() as out:
        cfg = overhead.make_config(args.regime, out)
        overhead.run_headless(cfg)  # warm-up, not shown
        for run in range(1, args.runs + 1):
            spent.clear()
            dt, n, _ = overhead.run_headless(cfg)
            print(f"\nrun {run}: {n} steps, {n / dt:.0f} steps/s, {1e6 * dt / n:.0f} us a step")
            for label, s in sorted(spent.items(), key=lambda kv: -kv[1]):
                print(f"  {label:28} {1e6 * s / n:7.1f} us/step {100 * s / dt:6.2f}%")


if __name__ == "__main__":
    main()
