"""A run's past, read from its files: what a resumed or attached dashboard draws first.

metrics.jsonl holds one line per optimizer step; a long run has millions, and parsing each
with json.loads costs seconds. The train lines, which the engine writes in one fixed form
(`RunLog.train_steps`), are matched by one regular expression on the mapped file: the
newest in full, the older ones sampled evenly when there are many (the charts draw a
bounded number of buckets anyway; see TAIL_BYTES). Evaluations and per-layer norms are
found by their key and only those lines go through json. Torch- and Textual-free.

A run resumed after a crash re-trains the steps after its checkpoint, so the file can
hold a step twice: walking from the end, a line is kept only when its step is below every
step kept so far, which leaves exactly the timeline that led to now.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The train line as RunLog.train_steps writes it (json.dumps writes the same key order).
_TRAIN = re.compile(rb'^\{"step": (\d+), "epoch": (\d+), "loss": ([^,]+), "lr": ([^,]+), '
                    rb'"lrs": \[([^\]]*)\], "grad_norm": ([^,}]+)', re.MULTILINE)
_VAL_KEY = re.compile(rb'"val_loss": ')
# The last TAIL_BYTES of metrics.jsonl (about 8,000 steps; the charts' exact window is 4,096)
# are read line by line. Before them, a file up to EXACT_BYTES is read whole; a longer one is
# sampled: SAMPLES lines spread evenly, far more than the buckets a chart draws from (1,024),
# so each column's band still spans many points. One spike between samples can be missed;
# spikes have their own markers, from events.jsonl.
TAIL_BYTES = 1 << 20
EXACT_BYTES = 8 << 20
SAMPLES = 32768
MAX_EVALS = 2000  # the val chart keeps 2,000 points
# events.jsonl can be long too (a spike alert per 100 steps); the event log shows the newest.
MAX_EVENT_RECORDS = 2000
EVENTS_TAIL_BYTES = 1 << 20


@dataclass
class History:
    """What the files say happened, oldest first; `upto_step` cut off what came after."""

    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    epoch: int = 0
    lrs: list[float] = field(default_factory=list)      # every group's LR at the last step
    evals: list[dict[str, Any]] = field(default_factory=list)  # {step, epoch, val_loss, val_acc}
    layer_norms: dict[str, float] = field(default_factory=dict)
    layer_norms_step: int | None = None
    events: list[dict[str, Any]] = field(default_factory=list)  # events.jsonl records, newest last
    metrics_bytes: int = 0   # how much of metrics.jsonl was read (whole lines)
    events_bytes: int = 0

    @property
    def last_step(self) -> int | None:
        return self.steps[-1] if self.steps else None


def _float(b: bytes) -> float:
    try:
        return float(b)
    except ValueError:
        return math.nan  # null: a non-finite value (JSON has no NaN)


def _floats(items: list[bytes]) -> list[float]:
    try:
        return list(map(float, items))
    except ValueError:
        return [_float(b) for b in items]


def _whole_lines(data: bytes) -> bytes:  # noqa: D103
    """Up to the last newline: a line being written right now is left for the live tail."""
    end = data.rfind(b"\n")
    return data[:end + 1] if end >= 0 else b""


def read_metrics(path: Path, h: History, upto_step: int | None = None, limit: int | None = None) -> None:
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size if limit is None else limit
            if size <= 0:
                return
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                end = data.rfind(b"\n", 0, min(size, len(data))) + 1  # a line being written waits for the tail
                h.metrics_bytes = end
                _read_train(data, end, h, upto_step)
                _read_others(data, end, h, upto_step)
    except (OSError, ValueError):  # ValueError: mmap of an empty file
        return


def _read_train(data: Any, end: int, h: History, upto_step: int | None) -> None:
    """Every line of the last TAIL_BYTES; before that, EXACT_BYTES in full or SAMPLES lines spread evenly."""
    tail = max(0, end - TAIL_BYTES)
    if tail:
        tail = data.find(b"\n", tail, end) + 1  # from a line's start
    if tail <= EXACT_BYTES:
        rows = _TRAIN.findall(data, 0, end)
    else:
        rows = []
        match, find = _TRAIN.match, data.find
        stride = tail / SAMPLES
        for i in range(SAMPLES):
            pos = 0 if i == 0 else find(b"\n", int(i * stride), tail) + 1
            if i and pos <= 0:
                continue
            m = match(data, pos, tail)
            if m is not None:
                rows.append(m.groups())
        rows += _TRAIN.findall(data, tail, end)
    if not rows:
        return
    steps = list(map(int, (r[0] for r in rows)))
    order = _timeline(steps, upto_step)
    if order is not None:
        rows = [rows[i] for i in order]
        steps = [steps[i] for i in order]
    if rows:
        h.steps = steps
        h.loss = _floats([r[2] for r in rows])
        h.lr = _floats([r[3] for r in rows])
        h.grad_norm = _floats([r[5] for r in rows])
        h.epoch = int(rows[-1][1])
        h.lrs = _floats([x for x in rows[-1][4].split(b",") if x.strip()])


def _line_at(data: Any, pos: int, end: int) -> bytes:
    start = data.rfind(b"\n", 0, pos) + 1
    stop = data.find(b"\n", pos, end)
    return data[start:stop if stop >= 0 else end]


def _read_others(data: Any, end: int, h: History, upto_step: int | None) -> None:
    """Evaluations (the newest MAX_EVALS) and the newest per-layer norms: found by their key,
    a fast scan, then only those lines are parsed."""
    spots = [m.start() for m in _VAL_KEY.finditer(data, 0, end)][-MAX_EVALS:]
    evals = []
    for pos in spots:
        try:
            rec = json.loads(_line_at(data, pos, end))
        except ValueError:
            continue
        step = rec.get("step") if isinstance(rec, dict) else None
        if isinstance(step, int) and (upto_step is None or step <= upto_step):
            evals.append(rec)
    if evals:
        keep = _timeline([e["step"] for e in evals], upto_step)
        h.evals = evals if keep is None else [evals[i] for i in keep]
    pos = end
    while True:
        pos = data.rfind(b'"layer_norms"', 0, pos)
        if pos < 0:
            return
        try:
            rec = json.loads(_line_at(data, pos, end))
        except ValueError:
            continue
        step = rec.get("step")
        if isinstance(step, int) and isinstance(rec.get("layer_norms"), dict) and (upto_step is None or step <= upto_step):
            h.layer_norms, h.layer_norms_step = rec["layer_norms"], step
            return


def _timeline(steps: list[int], upto_step: int | None) -> list[int] | None:
    """Indices of the lines on the path to now (see the module's docstring); None: all of them."""
    if upto_step is None and all(a < b for a, b in zip(steps, steps[1:])):
        return None
    keep, low = [], math.inf if upto_step is None else upto_step + 1
    for i in range(len(steps) - 1, -1, -1):
        if steps[i] < low:
            keep.append(i)
            low = steps[i]
    keep.reverse()
    return keep


def read_events(path: Path, h: History, upto_step: int | None = None, limit: int | None = None) -> None:
    """The newest MAX_EVENT_RECORDS records (the tail of the file: it is read from the end)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell() if limit is None else min(limit, f.tell())
            start = max(0, size - EVENTS_TAIL_BYTES)
            f.seek(start)
            data = f.read(size - start)
    except OSError:
        return
    data = _whole_lines(data)
    h.events_bytes = start + len(data)
    lines = data.split(b"\n")
    if start:
        lines = lines[1:]  # cut mid-line
    out = []
    for line in lines[-MAX_EVENT_RECORDS - 1:]:
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and (upto_step is None or not isinstance(rec.get("step"), int)
                                      or rec["step"] <= upto_step):
            out.append(rec)
    h.events = out[-MAX_EVENT_RECORDS:]


def read_history(run_dir: str | Path, upto_step: int | None = None, *,
                 metrics_limit: int | None = None, events_limit: int | None = None) -> History:
    """The run's metrics and events up to `upto_step` (all if None), and up to the byte limits
    (a live run's server says how far its files had reached when the client subscribed)."""
    d = Path(run_dir)
    h = History()
    read_metrics(d / "metrics.jsonl", h, upto_step, metrics_limit)
    read_events(d / "events.jsonl", h, upto_step, events_limit)
    return h


def _command_kinds() -> set[str]:
    from danlu.engine.control.events import CommandKind
    return {str(k) for k in CommandKind}


def as_events(h: History) -> tuple[list[Any], dict[int, Any]]:
    """The history's evaluations and events.jsonl records as engine events, in step order, and the
    commands they answer (negative ids) so the event log and the fold read them as live ones."""
    from danlu.engine.control import events as ev
    out: list[tuple[int, int, Any]] = []  # (step, order, event)
    commands: dict[int, Any] = {}
    best = math.inf
    for i, rec in enumerate(h.evals):
        loss = rec.get("val_loss")
        loss = math.nan if loss is None else float(loss)
        is_best = math.isfinite(loss) and loss < best
        best = loss if is_best else best
        out.append((rec["step"], i, ev.EvalDone(rec["step"], int(rec.get("epoch") or 0), loss,
                                                rec.get("val_acc"), best, is_best)))
    kinds, alerts = _command_kinds(), {str(k) for k in ev.AlertKind}
    for i, rec in enumerate(h.events):
        e = _event(rec, -(i + 1), kinds, alerts, commands)
        if e is not None:
            out.append((int(rec.get("step") or 0), len(h.evals) + i, e))
    out.sort(key=lambda t: (t[0], t[1]))
    return [e for _, _, e in out], commands


def _event(rec: dict[str, Any], cid: int, kinds: set[str], alerts: set[str], commands: dict) -> Any:
    from danlu.engine.control import events as ev
    kind, step = str(rec.get("kind", "")), int(rec.get("step") or 0)
    if kind in kinds and ("old" in rec or "new" in rec):
        args = {"name": rec["name"]} if "name" in rec else {}
        commands[cid] = ev.Command(kind, args, id=cid)
        return ev.CommandApplied(cid, kind, step, rec.get("old"), rec.get("new"), rec.get("detail", ""))
    if kind == "rejected":
        return ev.CommandRejected(cid, str(rec.get("command", "")), step, str(rec.get("reason", "")))
    if kind == "checkpoint":
        return ev.CheckpointSaved(step, str(rec.get("path", "")), str(rec.get("reason", "")))
    if kind in alerts:
        return ev.Alert(step, kind, str(rec.get("message", "")), str(rec.get("details", "")))
    extra = {k: v for k, v in rec.items() if k not in ("step", "time", "kind") and v not in (None, "", [], {})}
    text = kind.replace("_", " ")
    if extra:
        text += ": " + ", ".join(f"{k} {_short(v)}" for k, v in extra.items())
    return ev.LogLine(step, "info", text)


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, str) and "/" in v:
        return "/".join(v.split("/")[-2:])  # a path: its last two parts say which file
    text = str(v)
    return text if len(text) <= 60 else text[:57] + "…"
