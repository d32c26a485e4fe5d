"""Profile a few optimizer steps with torch.profiler: a Chrome trace in the run directory, the top ops.

The Trainer holds at most one StepProfile (`Trainer.profile`); with none asked for it is None and
the loop's hooks are a None check each. A profile asked for (the `profile` command, or
`monitor.profile_steps` from the config) waits for its first step, records from the step boundary
before that step to the boundary after its last, then writes `profile/steps-A-B.json` and emits
ProfileDone: the ops with the most self time, and the share of the steps' wall time spent waiting
for the next batch (timed around the loader's next() in the loop, only while recording). The
boundaries' own time (commands, a pause) is left out of the steps' time, not out of the trace.
"""

from __future__ import annotations

import os
import re
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import torch
from torch.profiler import ProfilerActivity, record_function

from ..control import events as ev

if TYPE_CHECKING:
    from .trainer import Trainer

TOP_OPS = 15          # rows in the event (the dialog shows what fits)
MAX_STEPS = ev.PROFILE_MAX_STEPS
END = object()        # what fetch returns when the loader is exhausted
FETCH_LABEL = "danlu::next_batch"   # the wait for a batch, as a span in the trace
# Kineto's own lines on stderr: kept out of the dashboard; its progress stages dropped altogether
_KINETO_LINE = re.compile(rb"(?:USDT|STAGE|INFO|WARNING|ERROR):\d{4}-\d\d-\d\d [\d:]+ \d+:\d+ [^\n]*\] [^\n]*\n")
_TAGS = (b"USDT:", b"STAGE:", b"INFO:", b"WARNING:", b"ERROR:")
_NOISE = _TAGS[:3]
_NO_GPU = b"gpuGetDeviceCount failed"   # kineto's ERROR line on every machine without a GPU


def check_steps(n: Any) -> int:
    """The number of steps to profile, or ValueError with the allowed range."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_STEPS:
        raise ValueError(f"profile takes a whole number of steps from 1 to {MAX_STEPS}, got {n!r}")
    return n


@contextmanager
def _quiet_stderr(on_line) -> Iterator[None]:
    """Drop kineto's own lines from fd 2 while the profiler starts and stops; pass on all else.

    fd 2 is where the dashboard draws (Textual writes its frames to stderr), so it is not silenced:
    it goes through a pipe whose reader forwards every byte but kineto's lines, which are
    whole lines of a known shape ("USDT:2026-01-01 12:00:00 1:1 File.cpp:39] profiler_start").
    """
    try:
        saved = os.dup(2)
        read_fd, write_fd = os.pipe()
    except OSError:
        yield
        return
    lines: list[str] = []

    def forward() -> None:
        held = b""   # the start of what may be a kineto line, until its end arrives (C++ writes it in pieces)
        with os.fdopen(read_fd, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                out = _KINETO_LINE.sub(lambda m: lines.append(m.group(0)) or b"", held + chunk)
                cut = _partial_start(out)
                out, held = out[:cut], out[cut:]
                if out:
                    os.write(saved, out)
        if held:
            os.write(saved, held)

    reader = threading.Thread(target=forward, name="danlu-profile-stderr", daemon=True)
    reader.start()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    try:
        yield
    finally:
        os.dup2(saved, 2)     # the pipe's last writer gone: the reader sees its end
        reader.join(timeout=5)
        os.close(saved)
        for line in lines:
            if not line.startswith(_NOISE) and _NO_GPU not in line:
                on_line("torch.profiler: " + line.decode(errors="replace").split("] ", 1)[-1].strip())


def _partial_start(buf: bytes) -> int:
    """Where an unfinished kineto line begins at the end of buf (len(buf) if none)."""
    for i in range(max(0, len(buf) - 200), len(buf)):
        tail = buf[i:]
        if b"\n" in tail:
            continue
        if any(tag.startswith(tail) for tag in _TAGS) or (tail.split(b":", 1)[0] + b":" in _TAGS):
            return i
    return len(buf)


class StepProfile:
    """One profiling window: steps first..last, pending until its first step, then recording."""

    def __init__(self, first: int, steps: int, *, source: str, command_id: int | None = None,
                 then: StepProfile | None = None):
        self.first, self.asked = first, check_steps(steps)
        self.source = source            # "command" or "monitor.profile_steps"
        self.command_id = command_id
        self.then = then                # a later window waiting behind this one (the config's)
        self.prof: Any = None           # the torch profiler while recording
        self.cuda = False
        self.data_s = 0.0               # waiting for batches, while recording
        self.wall_s = 0.0               # the steps' wall time, boundaries left out
        self._since: float | None = None

    @property
    def last(self) -> int:
        return self.first + self.asked - 1

    def overlaps(self, first: int, last: int) -> bool:
        return not (last < self.first or first > self.last)

    # ------------------------------------------------------------------ the loop's hooks
    def fetch(self, batches: Iterator) -> Any:
        """next(batches), timed while recording; END when it is exhausted."""
        if self.prof is None:
            return next(batches, END)
        t = time.perf_counter()
        with record_function(FETCH_LABEL):
            batch = next(batches, END)
        self.data_s += time.perf_counter() - t
        return batch

    def step_begins(self, t: Trainer, step: int) -> None:
        """After the boundary before optimizer step `step`: start recording at the first one."""
        if self.prof is None:
            if step < self.first:
                return
            self._start(t)
        else:
            self.prof.step()  # a ProfilerStep#N span per step in the trace
        self._since = time.perf_counter()

    def step_done(self, t: Trainer) -> StepProfile | None:
        """Before a boundary: the window's steps all done -> write and report; returns who comes next."""
        if self.prof is None:
            return self
        self._pause_clock()
        if t.progress.step < self.last:
            return self
        self.finish(t)
        return self.then

    def _pause_clock(self) -> None:
        if self._since is not None:
            self.wall_s += time.perf_counter() - self._since
            self._since = None

    # ------------------------------------------------------------------ start, finish
    def _start(self, t: Trainer) -> None:
        self.cuda = t.device is not None and t.device.type == "cuda" and torch.cuda.is_available()
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.cuda else [])
        self.first = t.progress.step + 1   # a command's window begins at this step, whatever it guessed
        prof = torch.profiler.profile(activities=activities)
        if self.cuda:
            torch.cuda.synchronize(t.device)  # the window holds the GPU work of its own steps only
        with _quiet_stderr(lambda line: t._log("info", line)):
            prof.start()
        self.prof = prof
        prof.step()

    def finish(self, t: Trainer, note: str = "") -> None:
        """Stop recording, write the trace, emit ProfileDone (one events.jsonl line)."""
        self._pause_clock()
        prof, self.prof = self.prof, None
        if prof is None:
            return
        if self.cuda:
            torch.cuda.synchronize(t.device)
        done = t.progress.step - self.first + 1
        last = self.first + done - 1
        if done <= 0:
            with _quiet_stderr(lambda line: None):
                prof.stop()
            return
        note = note if done < self.asked else ""
        path = Path(t.run_dir) / "profile" / f"steps-{self.first}-{last}.json"
        try:
            with _quiet_stderr(lambda line: t._log("info", line)):
                prof.stop()
                ops = top_ops(prof.key_averages(), self.cuda)
                path.parent.mkdir(parents=True, exist_ok=True)
                prof.export_chrome_trace(str(path))
        except (OSError, RuntimeError) as e:
            t._warn(f"profile of steps {self.first}-{last} not written: {type(e).__name__}: {e}")
            return
        share = min(1.0, self.data_s / self.wall_s) if self.wall_s > 0 else 0.0
        event = ev.ProfileDone(
            step=t.progress.step, first_step=self.first, steps=done, asked=self.asked, trace=str(path),
            top_ops=ops, data_share=share, step_time=self.wall_s / max(done, 1), data_time=self.data_s,
            activities=["cpu", "cuda"] if self.cuda else ["cpu"], source=self.source,
            command_id=self.command_id, detail=note)
        t.emit(event)
        t.log.event("profile_done", t.progress.step, **{k: v for k, v in ev.to_dict(event).items()
                                                   if k not in ("type", "step")})

    def abandon(self) -> None:
        """The run failed mid-window: stop the profiler, write nothing."""
        prof, self.prof = self.prof, None
        if prof is not None:
            try:
                with _quiet_stderr(lambda line: None):
                    prof.stop()
            except RuntimeError:
                pass


def top_ops(averages: Any, cuda: bool, k: int = TOP_OPS) -> list[dict[str, Any]]:
    """The k ops with the most self time (self CUDA time where recorded), as plain dicts."""
    def device_us(e: Any) -> float:
        us = getattr(e, "self_device_time_total", None)  # older torch: self_cuda_time_total
        return float((us if us is not None else getattr(e, "self_cuda_time_total", 0.0)) or 0.0)

    rows = [e for e in averages if not e.key.startswith(("ProfilerStep#", "danlu::"))]
    # by GPU time where kernels were recorded (CUPTI can be unavailable: then by CPU time)
    by_device = cuda and any(device_us(e) > 0 for e in rows)
    key = device_us if by_device else (lambda e: float(e.self_cpu_time_total))
    total = sum(key(e) for e in rows) or 1.0
    rows.sort(key=key, reverse=True)
    return [{"name": e.key, "self_cpu_us": float(e.self_cpu_time_total),
             "self_cuda_us": device_us(e) if cuda else None, "calls": int(e.count),
             "pct": 100.0 * key(e) / total} for e in rows[:k] if key(e) > 0]


def from_config(t: Trainer) -> StepProfile | None:
    """The window monitor.profile_steps asks for, or None (with a warning when the run is past it)."""
    spec = t.cfg.monitor.profile_steps
    if not spec:
        return None
    start, count = spec
    if start <= t.progress.step:
        t._warn(f"monitor.profile_steps starts at step {start}; this run is already at step {t.progress.step}: "
                "nothing profiled (press p in the dashboard to profile now)")
        return None
    if start > t.total_steps:
        t._warn(f"monitor.profile_steps starts at step {start}, after the run's last step ({t.total_steps}): "
                "nothing will be profiled")
        return None
    return StepProfile(start, count, source="monitor.profile_steps")


def request(t: Trainer, steps: Any, command_id: int) -> StepProfile:
    """A command's window, from the next step; the config's window, if still ahead, waits behind it."""
    n = check_steps(steps)
    first, current = t.progress.step + 1, t.profile
    if current is not None and (current.prof is not None or current.overlaps(first, first + n - 1)):
        raise ValueError(f"a profile of steps {current.first}-{current.last} ({current.source}) is under way "
                         "or due; ask again when its result is in")
    if first > t.total_steps:
        raise ValueError("the run has no steps left to profile")
    return StepProfile(first, n, source="command", command_id=command_id, then=current)
