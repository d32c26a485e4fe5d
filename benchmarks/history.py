"""How long until a resumed or attached dashboard shows a long run's history?

Not a test (never asserted). Run from the repository root:

    python -m benchmarks.history                 # 10^6 train records (about 120 MB)
    python -m benchmarks.history --records 100000

Writes a run directory in a temporary folder: metrics.jsonl with N train lines in the
form RunLog.train_steps writes, an eval line every 1,000 steps and a per-layer norm line
every 10,000; events.jsonl with a checkpoint every 5,000 steps and a few LR changes.
Then, with a warm page cache (the file was just written; a run being attached to is the
same) and a cold process state, times:

1. read: `read_history` (tui/history.py), the files to plain lists;
2. fold: the same into a RunState (`EventPump.load_history`), series and EMAs included;
3. first frame: the real dashboard (create_app, no engine) at 120x40, from the app's start
   to the first frame that shows the history, charts drawn; alternated with the same app
   and no history (the floor: Textual's own start).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import machine


def write_run(run_dir: Path, records: int, seed: int = 0) -> int:
    """A run directory whose files look like a long run's; returns metrics.jsonl's size."""
    rng = random.Random(seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    lines, events = [], []
    lr = 1e-3
    for s in range(1, records + 1):
        loss = 2.0 * math.exp(-s / (records / 4)) + 0.05 + rng.random() * 0.1
        if s % 200_000 == 0:
            old, lr = lr, lr / 2
            events.append(f'{{"step": {s}, "time": 0.0, "kind": "set_lr", "old": [{old!r}], "new": [{lr!r}]}}')
        lines.append(f'{{"step": {s}, "epoch": {1 + s // 10_000}, "loss": {loss!r}, "lr": {lr!r}, '
                     f'"lrs": [{lr!r}], "grad_norm": {1.0 + rng.random()!r}}}')
        if s % 1000 == 0:
            lines.append(f'{{"step": {s}, "epoch": {1 + s // 10_000}, "val_loss": {loss * 1.1!r}, "val_acc": 0.9}}')
        if s % 10_000 == 0:
            lines.append(f'{{"step": {s}, "layer_norms": {{"conv1.weight": 0.5, "fc.weight": 0.25}}}}')
        if s % 5000 == 0:
            events.append(f'{{"step": {s}, "time": 0.0, "kind": "checkpoint", '
                          f'"path": "{run_dir}/checkpoints/step-{s:07d}.pt", "reason": "periodic"}}')
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    (run_dir / "events.jsonl").write_text("\n".join(events) + "\n")
    return (run_dir / "metrics.jsonl").stat().st_size


def time_read(run_dir: Path, repeats: int) -> tuple[list[float], list[float]]:
    from danlu.tui.history import read_history
    from danlu.tui.pump import EventPump
    from danlu.engine.control.channel import Channel
    reads, folds = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        read_history(run_dir)
        reads.append(time.perf_counter() - t0)
        pump = EventPump(Channel())
        t0 = time.perf_counter()
        pump.load_history(str(run_dir))
        pump.state.loss  # noqa: B018 - the fold happens on read
        folds.append(time.perf_counter() - t0)
    return reads, folds


async def time_first_frame(run_dir: Path | None) -> tuple[float, int]:
    """Mount to the first frame with the history drawn: (seconds, steps in the loss series)."""
    from danlu.engine.control.channel import Channel
    from danlu.tui.app import create_app
    from danlu.tui.widgets.loss_chart import LossChart

    app = create_app(Channel())
    t0 = time.perf_counter()
    async with app.run_test(size=(120, 40)) as pilot:
        dash = app._dashboard()
        if run_dir is not None:
            app.pump.load_history(str(run_dir))
        dash.tick()
        dash.redraw()
        await pilot.pause()
        chart = app.screen.query_one(LossChart)
        chart.refresh()
        await pilot.pause()
        elapsed = time.perf_counter() - t0
        return elapsed, app.pump.state.loss.count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        t0 = time.perf_counter()
        size = write_run(run_dir, args.records)
        print(f"wrote {args.records:,} train records ({size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s")
        reads, folds = time_read(run_dir, args.repeats)
        print(f"read_history:           median {statistics.median(reads):.2f} s  (min {min(reads):.2f}, max {max(reads):.2f})")
        print(f"read + fold (RunState): median {statistics.median(folds):.2f} s  (min {min(folds):.2f}, max {max(folds):.2f})")
        frames, bare = [], []
        for _ in range(args.repeats):  # alternated, so load changes hit both alike
            frames.append(asyncio.run(time_first_frame(run_dir)))
            bare.append(asyncio.run(time_first_frame(None))[0])
        secs = [f[0] for f in frames]
        print(f"first frame, no history (the floor):                 median {statistics.median(bare):.2f} s "
              f"(min {min(bare):.2f}, max {max(bare):.2f})")
        print(f"first frame (app start, history, charts at 120x40): median {statistics.median(secs):.2f} s "
              f"(min {min(secs):.2f}, max {max(secs):.2f}); {frames[0][1]:,} steps in the loss series")


if __name__ == "__main__":
    main()
