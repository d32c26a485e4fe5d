"""`danlu run --headless`: the engine in a thread, one compact progress line, signals handled."""

from __future__ import annotations

import math
import os
import signal
import sys
import time

from danlu.engine.control import events as ev
from danlu.engine.control.channel import Channel
from danlu.engine.config.schema import Config


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "--:--"
    s = int(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class ProgressLine:
    """Keeps the latest numbers and renders them as one line."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.last: ev.Metrics | None = None
        self.val: ev.EvalDone | None = None
        self._printed_at = 0.0
        self._width = 0

    def line(self) -> str:
        m = self.last
        if m is None:
            return "starting..."
        parts = [f"step {m.step}/{m.total_steps}", f"ep {m.epoch + 1}", f"loss {m.loss[-1]:.4f}",
                 f"lr {m.lr[-1]:.3g}", f"gnorm {m.grad_norm[-1]:.3g}", f"{m.steps_per_s:.1f} it/s",
                 f"eta {fmt_duration(m.eta)}"]
        if self.val is not None:
            parts.append(f"val {self.val.val_loss:.4f} acc {self.val.val_acc:.1%}")
        return " | ".join(parts)

    def show(self, force: bool = False) -> None:
        if self.last is None:
            return
        now = time.monotonic()
        if self.tty:
            text = self.line()
            pad = max(0, self._width - len(text))
            self.stream.write("\r" + text + " " * pad)
            self._width = len(text)
            self.stream.flush()
        elif force or now - self._printed_at >= 10:
            print(self.line(), file=self.stream, flush=True)
            self._printed_at = now

    def message(self, text: str) -> None:
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
        print(text, file=self.stream, flush=True)


def run_headless(cfg: Config, resume: str | None = None) -> int:
    """Train with a progress line; returns the process exit code."""
    from danlu.engine.loop.trainer import Trainer  # torch loads here, not at `danlu --help`
    import threading

    channel = Channel()
    trainer = Trainer(cfg, channel, resume=resume)
    trainer.interactive = False
    progress = ProgressLine()
    stops = {"n": 0}

    def on_signal(signum, frame):  # only sets a flag; the loop saves at the next step boundary
        stops["n"] += 1
        if stops["n"] > 1 and signum == signal.SIGINT:
            progress.message("second Ctrl-C: exiting now (checkpoints on disk are intact)")
            os._exit(130)
        trainer.request_stop(save=True)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    result: dict = {}

    def target():
        try:
            result["state"] = trainer.run()
        except Exception as e:  # noqa: BLE001 - UserError from setup; reported below
            result["error"] = e

    thread = threading.Thread(target=target, name="danlu-engine")
    thread.start()
    try:
        while thread.is_alive():
            thread.join(timeout=0.25)
            _drain(channel, progress)
        _drain(channel, progress)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if progress.tty:
        progress.stream.write("\n")
    if "error" in result:
        raise result["error"]
    state = result.get("state", "failed")
    run_dir = getattr(trainer, "run_dir", None)
    if state == "finished":
        progress.message(f"finished: {run_dir}")
        return 0
    if state == "stopped":
        progress.message(f"stopped at step {trainer.step}; checkpoint saved in {run_dir}/checkpoints\n"
                         f"resume with: danlu run --resume {run_dir}")
        return 0
    progress.message(f"failed: {trainer.error}\nrun directory: {run_dir}")
    return 1


def _drain(channel: Channel, progress: ProgressLine) -> None:
    for e in channel.drain():
        if isinstance(e, ev.Metrics):
            progress.last = e
        elif isinstance(e, ev.EvalDone):
            progress.val = e
            progress.message(f"eval @ step {e.step}: val_loss {e.val_loss:.4f}  val_acc {e.val_acc:.1%}"
                             + ("  (best)" if e.is_best else ""))
        elif isinstance(e, ev.RunStarted):
            progress.message(f"danlu: {e.run_dir} | {e.device} {e.precision} | {e.num_params:,} params | "
                             f"{e.total_steps} steps | {e.schedule}")
        elif isinstance(e, ev.Alert) and e.kind == "bad_input":
            continue  # the command line prints it once, with exit code 2
        elif isinstance(e, ev.Alert):
            progress.message(f"[{e.kind}] {e.message}" + (f"\n{e.details}" if e.kind == "error" and e.details else ""))
        elif isinstance(e, ev.LogLine) and e.level != "debug":
            progress.message(f"[{e.level}] {e.message}")
        elif isinstance(e, ev.CheckpointSaved) and e.reason != "periodic":
            progress.message(f"checkpoint ({e.reason}) step {e.step}: {e.path}")
        elif isinstance(e, ev.StatusChanged) and e.state == "stopping":
            progress.message("stopping: saving a checkpoint at the next step boundary...")
    progress.show()
