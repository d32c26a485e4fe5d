"""`danlu run --headless`: the engine in its thread, one compact progress line, signals handled."""

from __future__ import annotations

import math
import os
import signal
import sys
import time

from danlu.engine.config.schema import Config
from danlu.engine.control import events as ev
from danlu.engine.control.channel import Channel
from danlu.engine.control.events import AlertKind, CheckpointReason, State

# Without a terminal (a log file, a batch job) the progress line is printed this often.
PLAIN_EVERY_S = 10.0


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "--:--"
    s = int(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class ProgressLine:
    """Keeps the latest numbers and renders them as one line (rewritten in place on a terminal)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.last: ev.Metrics | None = None
        self.val: ev.EvalDone | None = None
        self._printed_at = 0.0
        self._width = 0      # the progress line on screen now (0: none)
        self._fresh = False  # numbers arrived since the line was last drawn
        self.stopping = False  # "stopping" was said

    def line(self) -> str:
        m = self.last
        if m is None:
            return "starting..."
        # the engine smooths the rate over running time, pauses left out
        parts = [f"step {m.step}/{m.total_steps}", f"ep {m.epoch}", f"loss {m.loss[-1]:.4f}",
                 f"lr {m.lr[-1]:.3g}", f"gnorm {m.grad_norm[-1]:.3g}", f"{m.steps_per_s:.1f} it/s",
                 f"eta {fmt_duration(m.eta)}"]
        if self.val is not None:
            parts.append(f"val {self.val.val_loss:.4f}" + _acc(self.val, " acc "))
        return " | ".join(parts)

    def update(self, m: ev.Metrics) -> None:
        self.last, self._fresh = m, True

    def show(self) -> None:
        """Draw the line if there is something new to draw."""
        if self.last is None or not self._fresh:
            return
        now = time.monotonic()
        if self.tty:
            text = self.line()
            pad = max(0, self._width - len(text))
            self.stream.write("\r" + text + " " * pad)
            self._width = len(text)
            self.stream.flush()
            self._fresh = False
        elif now - self._printed_at >= PLAIN_EVERY_S:
            print(self.line(), file=self.stream, flush=True)
            self._printed_at = now
            self._fresh = False

    def message(self, text: str) -> None:
        """A line of its own; the progress line comes back with the next numbers (never a stale copy
        of it after the run's last words)."""
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
        self._fresh = False
        print(text, file=self.stream, flush=True)

    def close(self) -> None:
        """The run is over: leave the terminal on a fresh line."""
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0
        self._fresh = False


def _acc(e: ev.EvalDone, label: str) -> str:
    """The accuracy part of a line, or nothing for a loss without one (regression)."""
    return f"{label}{e.val_acc:.1%}" if e.val_acc is not None else ""


def run_headless(cfg: Config, resume: str | None = None, stream=None, warm_start: str | None = None,
                 on_started=None) -> int:
    """Train with a progress line; returns the process exit code. `on_started(run_dir)` is called once
    the run directory exists (--detach moves its output file there)."""
    from danlu.engine.loop.runner import start_engine

    channel = Channel()
    progress = ProgressLine(stream)
    stops = {"n": 0}
    thread = None

    hangup = {"pending": False, "done": False}

    def on_signal(signum, frame):  # only sets flags; the loop saves at the next step boundary
        if signum == signal.SIGHUP and cfg.run.on_hangup == "continue":
            hangup["pending"] = True  # the loop moves the output to output.log and records it
            return
        stops["n"] += 1
        if stops["n"] > 1 and signum == signal.SIGINT:
            progress.message("second Ctrl-C: exiting now (checkpoints on disk are intact)")
            os._exit(130)
        if signum == signal.SIGHUP:
            hangup["stop"] = True
        thread.request_stop(save=True)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        thread = start_engine(cfg, channel, resume=resume, warm_start=warm_start, interactive=False)
        while thread.is_alive():
            thread.join(timeout=0.25)
            _after_hangup(hangup, thread, progress)
            try:
                _drain(channel, progress, on_started)
                progress.show()
            except OSError:  # EIO: the terminal is gone (a SIGHUP may not have come)
                _lost_terminal(cfg, hangup, thread)
        _drain(channel, progress, on_started)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    try:
        progress.close()
    except OSError:
        pass
    code, text = thread.outcome()
    if code == 2:
        raise thread.error  # bad input: the command line prints it once, with exit code 2
    progress.message(text)
    return code


def _after_hangup(hangup: dict, thread, progress: ProgressLine) -> None:
    """run.on_hangup continue: once the run directory exists, output to output.log, recorded."""
    from .hangup import continue_after_hangup
    if hangup.get("stop") and not hangup["done"]:
        hangup["done"] = thread.note_hangup("stop")
    if hangup["pending"] and not hangup["done"] and continue_after_hangup(thread):
        hangup["done"], progress.tty, progress._width = True, False, 0


def _lost_terminal(cfg: Config, hangup: dict, thread) -> None:
    if cfg.run.on_hangup == "continue":
        hangup["pending"] = True
    elif not hangup.get("stop"):
        hangup["stop"] = True
        thread.request_stop(save=True)


def _drain(channel: Channel, progress: ProgressLine, on_started=None) -> None:
    for e in channel.drain():
        if isinstance(e, ev.RunStarted) and on_started is not None:
            on_started(e.run_dir)
        if isinstance(e, ev.Metrics):
            progress.update(e)
        elif isinstance(e, ev.EvalDone):
            progress.val = e
            progress.message(f"eval @ step {e.step}: val_loss {e.val_loss:.4f}" + _acc(e, "  val_acc ")
                             + ("  (best)" if e.is_best else ""))
        elif isinstance(e, ev.RunStarted):
            progress.message(f"danlu: {e.run_dir} | {e.device} {e.precision} | {e.num_params:,} params | "
                             f"{e.total_steps} steps | {e.schedule}")
        elif isinstance(e, ev.Alert) and e.kind == AlertKind.BAD_INPUT:
            continue  # the command line prints it once, with exit code 2
        elif isinstance(e, ev.Alert):
            progress.message(f"[{e.kind}] {e.message}"
                             + (f"\n{e.details}" if e.kind == AlertKind.ERROR and e.details else ""))
        elif isinstance(e, ev.LogLine) and e.level != "debug":
            progress.message(f"[{e.level}] {e.message}")
        elif isinstance(e, ev.CheckpointSaved) and e.reason != CheckpointReason.PERIODIC:
            progress.message(f"checkpoint ({e.reason}) step {e.step}: {e.path}")
        elif isinstance(e, ev.StatusChanged) and e.state == State.STOPPING and not progress.stopping:
            progress.stopping = True  # said once (a save on the way out passes through the state again)
            progress.message(f"stopping: {e.detail or 'at the next step boundary'}...")
