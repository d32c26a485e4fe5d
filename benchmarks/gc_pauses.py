"""Python's garbage collector during training: how often, how long, on which thread.

Not a test (never asserted). Run from the repository root:

    python -m benchmarks.gc_pauses                 # small CNN, 3,000 steps, b and c
    python -m benchmarks.gc_pauses --steps 1000 --variants c

A `gc.callbacks` hook times every collection that starts while `Trainer._train` runs,
by thread and generation. Each variant (b: `danlu run --headless`'s code path, c: the
dashboard live, as in benchmarks/overhead.py) runs twice: as shipped, where the engine
freezes the heap built before training (engine/loop/heap.py), and with that freeze turned
off. A collection holds the GIL for its whole length, so a long one stalls the training
thread even when another thread triggered it.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import tempfile
import threading
import time

import torch

from benchmarks import overhead
from benchmarks.common import machine
from danlu.engine.loop import trainer as trainer_mod

_FREEZE = trainer_mod.frozen_heap


class Collections:
    """Per (thread, generation): count, total and longest pause, while armed."""

    def __init__(self):
        self.armed = False
        self.stats: dict[tuple[str, int], list[float]] = {}
        self._start: dict[int, float] = {}

    def __call__(self, phase: str, info: dict) -> None:
        if not self.armed:
            return
        tid = threading.get_ident()
        if phase == "start":
            self._start[tid] = time.perf_counter()
        elif tid in self._start:
            dt = time.perf_counter() - self._start.pop(tid)
            name = "training" if threading.current_thread().name.startswith("danlu-engine") else "ui/main"
            s = self.stats.setdefault((name, info["generation"]), [0, 0.0, 0.0])
            s[0] += 1
            s[1] += dt
            s[2] = max(s[2], dt)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--regime", choices=list(overhead.REGIMES), default="cnn")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--variants", default="b,c")
    args = p.parse_args()
    torch.set_num_threads(1)
    overhead.REGIMES[args.regime]["steps"] = args.steps
    watch = Collections()
    gc.callbacks.append(watch)
    orig_train = trainer_mod.Trainer._train  # overhead's timed wrapper

    def armed_train(self):
        watch.armed = True
        try:
            orig_train(self)
        finally:
            watch.armed = False

    trainer_mod.Trainer._train = armed_train
    runs = {"b": overhead.run_headless, "c": overhead.run_dashboard}
    print(machine())
    print(f"{args.regime}, {args.steps} steps; collections while Trainer._train runs\n")
    print(f"{'variant':6} {'heap':9} {'steps/s':>8} {'thread':>9} {'gen':>4} {'count':>6} {'total ms':>9}"
          f" {'max ms':>7} {'% of run':>9}")
    for v in [x for x in args.variants.split(",") if x]:
        for freeze in (True, False):
            trainer_mod.frozen_heap = _FREEZE if freeze else contextlib.nullcontext
            watch.stats.clear()
            with tempfile.TemporaryDirectory() as out:
                dt, n, _cpu = runs[v](overhead.make_config(args.regime, out))
            label = "frozen" if freeze else "unfrozen"
            rows = sorted(watch.stats.items()) or [(("-", -1), [0, 0.0, 0.0])]
            for (thread, gen), (count, total, longest) in rows:
                print(f"{v:6} {label:9} {n / dt:8.1f} {thread:>9} {gen:>4} {count:>6} {1000 * total:9.1f}"
                      f" {1000 * longest:7.1f} {100 * total / dt:8.2f}%", flush=True)
    trainer_mod.frozen_heap = _FREEZE


if __name__ == "__main__":
    main()
