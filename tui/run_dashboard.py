"""`danlu run` with the dashboard: the engine in a thread, the app in the foreground."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any

from danlu.engine.control.channel import Channel
from danlu.engine.control.events import Alert, StatusChanged, stop


def engine_starter(cfg: Any, channel: Channel, resume: str | None, holder: dict,
                   warm_start: str | None = None) -> callable:
    """A start_engine for create_app: torch loads in the engine thread, so the first frame is quick.

    With warm_start (a checkpoint file), a new run starts from it (restart with changes).
    The holder always names the latest trainer, so the exit code and prints are about it.
    """

    def target() -> None:
        holder.pop("error", None)  # a new run: an earlier run's failure is not this one's
        try:
            from danlu.engine.errors import UserError
            from danlu.engine.loop.trainer import Trainer
            trainer = Trainer(cfg, channel, resume=resume, warm_start=warm_start)
            holder["trainer"] = trainer
            if holder.get("signalled"):
                trainer.request_stop(save=True)
            trainer.run()
        except Exception as e:  # noqa: BLE001 - shown in the dashboard, reported again on exit
            holder["error"] = e
            if not isinstance(e, UserError):
                import traceback
                channel.emit(Alert(0, "error", f"{type(e).__name__}: {e}", traceback.format_exc()))
                channel.emit(StatusChanged("failed", 0, str(e)))

    def start() -> threading.Thread:
        t = threading.Thread(target=target, name="danlu-engine")
        t.start()
        return t

    return start


def _say(text: str, err: bool = False) -> None:
    """Print, unless the terminal is gone (a dropped SSH session): the run directory has it all."""
    try:
        print(text, file=sys.stderr if err else sys.stdout, flush=True)
    except OSError:
        pass


def _exit_once_saved(app: Any, holder: dict, grace_s: float = 5.0) -> None:
    """After SIGHUP/SIGTERM: once the engine has saved and ended, make sure the process ends too.

    With its terminal gone the app can block for good writing to it; the run directory
    already holds everything, so after a grace period the process leaves without the app.
    """
    while True:
        thread = app.engine_thread
        if thread is not None and not thread.is_alive():
            break
        time.sleep(0.1)
    time.sleep(grace_s)  # the app's own, orderly exit normally wins this race
    trainer = holder.get("trainer")
    state = getattr(trainer, "final_state", "failed")
    os._exit(0 if state in ("finished", "stopped") else 1)


def run_dashboard(cfg: Any, resume: str | None = None) -> int:
    """Open the dashboard on a run; returns the process exit code."""
    from .app import create_app

    channel = Channel()
    holder: dict = {}
    app = create_app(channel, engine_starter(cfg, channel, resume, holder),
                     title=f"danlu · {cfg.run.name}",
                     make_starter=lambda new_cfg, warm: engine_starter(new_cfg, channel, None, holder,
                                                                       warm_start=warm))

    def on_signal(signum, frame):
        # SIGTERM, or SIGHUP when the SSH session drops: save at the next step boundary and end.
        # The handler only sets flags; the engine saves, the app exits.
        holder["signalled"] = signum
        trainer = holder.get("trainer")
        if trainer is not None:
            trainer.request_stop(save=True)
        app.exit(return_code=0)
        if "watchdog" not in holder:
            holder["watchdog"] = threading.Thread(target=_exit_once_saved, args=(app, holder),
                                                  name="danlu-hangup", daemon=True)
            holder["watchdog"].start()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        app.run()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        thread = app.engine_thread
        if thread is not None and thread.is_alive():
            channel.send(stop(save=True))  # the app left without stopping the engine (lost terminal)
            thread.join(timeout=300)
    trainer = holder.get("trainer")
    error = holder.get("error")
    if error is not None:
        from danlu.engine.errors import UserError
        _say(f"danlu: {error}", err=True)
        return error.exit_code if isinstance(error, UserError) else 1
    if trainer is None:
        return 1
    run_dir = getattr(trainer, "run_dir", None)
    state = trainer.final_state
    if state == "finished":
        _say(f"danlu: finished at step {trainer.step}: {run_dir}")
        return 0
    if state == "stopped":
        _say(f"danlu: stopped at step {trainer.step}; run directory {run_dir}\n"
             f"resume with: danlu run --resume {run_dir}")
        return 0
    _say(f"danlu: the run failed: {trainer.error}\nrun directory: {run_dir}", err=True)
    return 1
