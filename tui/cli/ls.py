"""`danlu ls [FOLDER]`: the runs under ./runs (or FOLDER) as a plain table, for scripts and slow links.

One line per run, newest first: name, state (a live state as state.json says it; `crashed` when
that says running but its process is gone), step/total, last training loss, best validation
loss, age of the last update (a live run's last step written), pid. No torch, no textual.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from danlu.engine.errors import UserError
from danlu.tui.run_index import RunEntry, age, fresh, last_train, scan_runs

COLUMNS = ("name", "state", "step", "loss", "best_val", "age", "pid")


def _num(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isinf(x)):
        return "-"
    return f"{x:.4g}"


def row(r: RunEntry, now: float) -> tuple[str, ...]:
    state = "running" if r.state in ("starting", "evaluating", "saving", "stopping") else r.state
    # state.json's step is written at state changes and checkpoints; metrics.jsonl within seconds of a step
    step, loss = last_train(r.dir)
    r = fresh(r)  # a live run: the time of its last metrics line too
    step = max(s for s in (step, r.step, -1) if s is not None)
    steps = f"{step if step >= 0 else '-'}/{r.total_steps if r.total_steps is not None else '-'}"
    return (r.name, state, steps, _num(loss), _num(r.best_val_loss),
            age(now - r.updated if r.updated else None), str(r.pid) if r.pid is not None else "-")


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(c[i]) for c in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip() for cells in [COLUMNS, *rows])


def ls(folder: str | None) -> int:
    root = Path(folder or "runs")
    if not root.is_dir():
        raise UserError(f"no folder {root.absolute()}: give the folder that holds your runs (run.out_dir), "
                        "e.g. danlu ls path/to/runs")
    runs = scan_runs(root)
    if not runs:
        print(f"no runs under {root}/")
        return 0
    now = time.time()
    print(table([row(r, now) for r in runs]))
    return 0
