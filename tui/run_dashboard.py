"""`danlu run` with the dashboard: the engine in a thread, the app in the foreground."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
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


def run_dashboard(cfg: Any, resume: str | None = None, warm_start: str | None = None,
                  link: Any = None) -> int:
    """Open the dashboard on a run; returns the process exit code.

    `link` (tui/detach.py): this process runs in a session of its own, its parent waiting on the
    terminal; `d` then detaches. Either way a lost terminal follows run.on_hangup.
    """
    from . import detach
    from .app import create_app

    channel = Channel()
    holder: dict = {}
    app = create_app(channel, engine_starter(cfg, channel, holder, resume=resume, warm_start=warm_start),
                     title=f"danlu · {cfg.run.name}",
                     make_starter=lambda new_cfg, warm: engine_starter(new_cfg, channel, holder, warm_start=warm),
                     can_detach=link is not None)
    keep_going = cfg.run.on_hangup != "stop"

    def hangup() -> None:
        """The terminal is gone: with on_hangup continue, the app closes and the run goes on."""
        if holder.get("hung_up") or app.detached:
            return
        holder["hung_up"] = True
        detach.silence()
        app.detached, app.detach_reason = True, "hangup"
        app.exit(return_code=0)

    def on_signal(signum, frame):
        if signum == signal.SIGHUP and keep_going:
            if not app.detached:
                hangup()
            return
        # SIGTERM, or SIGHUP with on_hangup stop: save at the next step boundary and end.
        # The handler only sets flags; the engine saves, the app exits.
        holder["signalled"] = signum
        thread = holder.get("thread")
        if thread is not None:
            if signum == signal.SIGHUP:
                thread.note_hangup("stop")
            thread.request_stop(save=True)
        if app.detached:
            return  # no app any more: the detached loop waits for the engine
        app.exit(return_code=0)
        if "watchdog" not in holder:
            holder["watchdog"] = threading.Thread(target=_exit_once_saved, args=(app, holder),
                                                  name="danlu-hangup", daemon=True)
            holder["watchdog"].start()

    watching = threading.Event()
    if link is not None:  # a parent killed with its terminal cannot pass SIGHUP on
        detach.watch_parent(link, lambda: app.call_from_thread(hangup) if keep_going else
                            os.kill(os.getpid(), signal.SIGHUP), watching)
    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        app.run()
        watching.set()
        if app.detached:
            _detached(app, channel, holder, link)
    finally:
        watching.set()
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


def _detached(app: Any, channel: Channel, holder: dict, link: Any) -> None:
    """The app has closed (`d`, or a lost terminal) and the run goes on: output to output.log, the
    parent told, the event recorded; then wait for the engine, writing what happens to the log."""
    from . import detach
    from .describe import describe

    reason = getattr(app, "detach_reason", "detached")
    state = app.pump.state
    run_dir = state.run.run_dir if state.run else None
    thread = app.engine_thread
    trainer = getattr(thread, "trainer", None)
    log = getattr(trainer, "log", None)
    detach.to_log(run_dir)
    if reason == "hangup" and thread is not None:
        thread.note_hangup("continue", output=str(Path(run_dir) / "output.log") if run_dir else None)
    elif log is not None:
        try:
            log.event("detach", state.step, pid=os.getpid(), output="output.log")
        except (OSError, ValueError):
            pass
    if link is not None:
        link.detached(run_dir or "")
    _say(f"danlu: {'terminal gone' if reason == 'hangup' else 'detached'} at step {state.step}; "
         f"training goes on (pid {os.getpid()}); danlu attach {run_dir}")
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # no terminal to lose any more
    # Nobody drains the channel now but this loop; the socket's clients get every event from its tap.
    while thread is not None and thread.is_alive():
        thread.join(1.0)
        for e in channel.drain():
            line = describe(e, app.pump.sent, run_dir)
            if line is not None:
                _say(f"[{line[0]}] {line[1]}")
