"""The run directory: resolved config, metrics.jsonl, events.jsonl, state.json."""

from __future__ import annotations

import json
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import UserError


def _clean(v: Any) -> Any:
    # JSON has no NaN/inf; a null keeps the line parseable and says "not a number".
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    return v


def _json_line(record: dict[str, Any]) -> str:
    return json.dumps(_clean(record))


def new_run_dir(out_dir: str, name: str) -> Path:
    """A fresh runs/<name>-<YYYYmmdd-HHMMSS>/ (suffixed if that second is taken)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(out_dir)
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"run.out_dir: cannot create {base} ({e.strerror}). "
                        "Point run.out_dir at a folder you can write to.") from None
    if not os.access(base, os.W_OK):
        raise UserError(f"run.out_dir: {base} is not writable. Point run.out_dir at a folder you can write to.")
    for i in range(1000):
        path = base / (f"{name}-{stamp}" + (f"-{i}" if i else ""))
        try:
            path.mkdir()
            (path / "checkpoints").mkdir()
            return path
        except FileExistsError:
            continue
    raise UserError(f"could not create a run directory under {base}")


def write_config(run_dir: Path, text: str) -> None:
    """config.yaml, replaced atomically: a resume that changed it leaves the old or the new, never half."""
    path = Path(run_dir) / "config.yaml"
    tmp = path.with_name(".config.yaml.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# metrics.jsonl is buffered (a write per step would cost the training loop), but what is written
# reaches the disk within this many seconds, so that `danlu ls` and other readers of the file see a
# live run's step: one write call a second at most, whatever the step rate.
DISK_FLUSH_S = 1.0


class RunLog:
    """Appends JSON lines to metrics.jsonl and events.jsonl; keeps state.json current.

    `lock` (reentrant) guards every write. The trainer also holds it around a write and the
    event that announces it (a flush and its Metrics, a checkpoint and its CheckpointSaved), so
    the control server, taking it in `sizes()`, sees either both or neither: the files' sizes at
    that instant split the record into history (on disk) and live tail (events after it).
    """

    def __init__(self, run_dir: Path):
        self.dir = Path(run_dir)
        self.lock = threading.RLock()
        self._metrics = open(self.dir / "metrics.jsonl", "a", buffering=1 << 16)
        self._events = open(self.dir / "events.jsonl", "a", buffering=1)
        self._flushed_at = time.monotonic()
        self.state: dict[str, Any] = {}
        p = self.dir / "state.json"
        if p.exists():
            try:
                self.state = json.loads(p.read_text())
            except (OSError, ValueError):
                self.state = {}

    def metric(self, record: dict[str, Any]) -> None:
        with self.lock:
            self._metrics.write(_json_line(record) + "\n")
            self._flush_if_due()

    def train_steps(self, steps: list[int], epochs: list[int], losses: list[float], lrs: list[list[float]],
                    norms: list[float], amp_skipped: set[int]) -> None:
        """One metrics.jsonl line per optimizer step, written in one go at each flush.

        This runs for every step of every run, on the training thread, so the common case
        (finite floats, no fp16 skip) is formatted directly: float repr is what json writes.
        Anything else goes through `_json_line`, as `metric()` does, and its NaN-to-null cleaning.
        """
        lines = []
        finite = math.isfinite
        for s, e, loss, lr, norm in zip(steps, epochs, losses, lrs, norms):
            if s in amp_skipped or not (finite(loss) and finite(norm) and all(map(finite, lr))):
                rec = {"step": s, "epoch": e, "loss": loss, "lr": lr[0], "lrs": lr, "grad_norm": norm}
                if s in amp_skipped:
                    rec["amp_skipped"] = True
                lines.append(_json_line(rec))
                continue
            # repr of a finite float, and of a list of them, is valid JSON and what json.dumps writes
            lines.append(f'{{"step": {s}, "epoch": {e}, "loss": {loss!r}, "lr": {lr[0]!r}, '
                         f'"lrs": {list(lr)!r}, "grad_norm": {norm!r}}}')
        if lines:
            with self.lock:
                self._metrics.write("\n".join(lines) + "\n")
                self._flush_if_due()

    def _flush_if_due(self) -> None:
        now = time.monotonic()
        if now - self._flushed_at >= DISK_FLUSH_S:
            self._metrics.flush()
            self._flushed_at = now

    def flush(self) -> None:
        with self.lock:
            self._metrics.flush()
            self._flushed_at = time.monotonic()

    def event(self, kind: str, step: int, **details: Any) -> None:
        rec = {"step": step, "time": round(time.time(), 3), "kind": kind, **details}
        with self.lock:
            self._events.write(_json_line(rec) + "\n")

    def sizes(self) -> dict[str, int]:
        """Flush both logs and return their sizes in bytes (the caller holds `lock` to keep them so)."""
        with self.lock:
            out = {}
            for name, f in (("metrics.jsonl", self._metrics), ("events.jsonl", self._events)):
                if f.closed:
                    out[name] = os.path.getsize(self.dir / name)
                    continue
                f.flush()
                out[name] = os.fstat(f.fileno()).st_size
            return out

    def set_state(self, **values: Any) -> None:
        """state.json: what a launcher lists (state, step, best val loss, pid)."""
        with self.lock:  # a pause or an end: the steps before it are on disk for readers too
            if not self._metrics.closed:
                self.flush()
        self.state.update(values)
        self.state["updated"] = round(time.time(), 3)
        tmp = self.dir / "state.json.tmp"
        tmp.write_text(_json_line(self.state))
        os.replace(tmp, self.dir / "state.json")

    def close(self) -> None:
        with self.lock:
            for f in (self._metrics, self._events):
                try:
                    f.close()
                except OSError:
                    pass


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue  # a line cut by a crash
    return out
