"""`danlu ls [FOLDER]`: the runs under ./runs (or FOLDER) as a plain table, for scripts and slow links.

One line per run, newest first: name, state (a live state as state.json says it; `crashed` when
that says running but its process is gone), step/total, last training loss, best validation
loss, age of the last update, pid. No torch, no textual.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from danlu.engine.errors import UserError
from danlu.tui.run_index import RunEntry, age, scan_runs

COLUMNS = ("name", "state", "step", "loss", "best_val", "age", "pid")
TAIL_BYTES = 16384  # the last training line is in the file's last few kilobytes


def last_train(run_dir: Path) -> tuple[int | None, float | None]:
    """The newest training record's step and loss in metrics.jsonl (read from its end)."""
    try:
        with open(run_dir / "metrics.jsonl", "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - TAIL_BYTES))
            lines = f.read().splitlines()
    except OSError:
        return None, None
    for line in reversed(lines):
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # the first, cut line of the tail, or one cut by a crash
        if isinstance(rec, dict) and "loss" in rec:
            loss, step = rec["loss"], rec.get("step")
            return (step if isinstance(step, int) else None,
                    float(loss) if isinstance(loss, (int, float)) else math.nan)
    return None, None


def _num(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isinf(x)):
        return "-"
    return f"{x:.4g}"


def row(r: RunEntry, now: float) -> tuple[str, ...]:
    state = "running" if r.state in ("starting", "evaluating", "saving", "stopping") else r.state
    step, loss = last_train(r.dir)  # state.json's step is written at checkpoints; metrics.jsonl at each flush
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
        raise UserError(f"no folder {root}: give the folder that holds your runs (run.out_dir)")
    runs = scan_runs(root)
    if not runs:
        print(f"no runs under {root}/")
        return 0
    now = time.time()
    print(table([row(r, now) for r in runs]))
    return 0
