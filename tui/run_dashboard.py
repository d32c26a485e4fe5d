"""`danlu run` with the dashboard: the engine in a thread, the app in the foreground."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any, Callable

from danlu.engine.control.channel import Channel
from danlu.engine.control.events import stop


def engine_starter(cfg: Any, channel: Channel, holder: dict, *, resume: str | None = None,
                   warm_start: str | None = None) -> Callable[[], Any]:
    """A start_engine for create_app. With warm_start (a checkpoint file), a new run starts from it
    (restart with changes). `holder["thread"]` always names the latest engine thread, so the exit
    code and the closing words are about it."""

    def start():
        from danlu.engine.loop.runner import start_engine
        thread = start_engine(cfg, channel, resume=resume, warm_start=warm_start)
        holder["thread"] = thread
        if holder.get("signalled"):
            thread.request_stop(save=True)
        return thread

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
    os._exit(thread.outcome()[0])


def run_dashboard(cfg: Any, resume: str | None = None, warm_start: str | None = None) -> int:
    """Open the dashboard on a run; returns the process exit code."""
    from .app import create_app

    channel = Channel()
    holder: dict = {}
    app = create_app(channel, engine_starter(cfg, channel, holder, resume=resume, warm_start=warm_start),
                     title=f"danlu · {cfg.run.name}",
                     make_starter=lambda new_cfg, warm: engine_starter(new_cfg, channel, holder, warm_start=warm))

    def on_signal(signum, frame):
        # SIGTERM, or SIGHUP when the SSH session drops: save at the next step boundary and end.
        # The handler only sets flags; the engine saves, the app exits.
        holder["signalled"] = signum
        thread = holder.get("thread")
        if thread is not None:
            thread.request_stop(save=True)
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
    thread = holder.get("thread")
    if thread is None:
        return 1
    code, text = thread.outcome()
    _say(f"danlu: {text}", err=code != 0)
    return code
