"""The one way to run the engine: a thread that builds a Trainer and runs it.

`danlu run` (dashboard and headless), restart with changes, the tests and the benchmarks all
start the engine through `start_engine`, so the end-to-end tests run the production path.
torch loads inside the thread, so a dashboard draws its first frame while it loads.
"""

from __future__ import annotations

import os
import threading
import traceback
from pathlib import Path
from typing import Any

from ..config.schema import Config
from ..control import events as ev
from ..control.channel import Channel
from ..control.events import AlertKind, CheckpointReason, State
from ..control.socket_server import ControlServer
from ..errors import UserError

# Exit codes of `danlu run` (README.md and `danlu --help` list them).
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_FAULT = 0, 1, 2, 3


class EngineThread(threading.Thread):
    """Runs one Trainer; after `join()`, `trainer`, `final_state` and `error` say how it ended."""

    def __init__(self, cfg: Config, channel: Channel, *, resume: str | os.PathLike | None = None,
                 warm_start: str | os.PathLike | None = None, interactive: bool = True, serve: bool = True):
        super().__init__(name="danlu-engine")
        self.cfg, self.channel = cfg, channel
        # every run serves its control socket (danlu ctl, danlu attach); its tap sees every event from the first
        self.control = ControlServer(channel) if serve else None
        self.resume, self.warm_start, self.interactive = resume, warm_start, interactive
        self.trainer: Any = None                 # the Trainer, once the thread has built it
        self.final_state: str | None = None
        self.error: BaseException | None = None  # a UserError from setup, or an unexpected failure
        self._lock = threading.Lock()
        self._early_stop: bool | None = None     # a stop asked for before the Trainer existed

    def run(self) -> None:
        try:
            from .trainer import Trainer  # torch loads here, in this thread
            trainer = Trainer(self.cfg, self.channel, resume=self.resume, warm_start=self.warm_start,
                              interactive=self.interactive, control=self.control)
            with self._lock:
                self.trainer = trainer
                if self._early_stop is not None:
                    trainer.request_stop(self._early_stop)
            self.final_state = trainer.run()
        except UserError as e:
            self.error = e  # the Trainer reported it already (an Alert and a failed status)
            self.final_state = State.FAILED
        except BaseException as e:  # noqa: BLE001 - the thread's end is reported, never raised into nothing
            self.error = e
            self.final_state = State.FAILED
            self.channel.emit(ev.Alert(0, AlertKind.ERROR, f"{type(e).__name__}: {e}", traceback.format_exc()))
            self.channel.emit(ev.StatusChanged(State.FAILED, 0, str(e)))
        finally:
            if self.control is not None and self.trainer is None:  # no Trainer to close it
                self.control.close()

    def request_stop(self, save: bool = True) -> None:
        """Stop at the next step boundary (signal handlers call this; it only sets flags)."""
        with self._lock:
            if self.trainer is not None:
                self.trainer.request_stop(save)
            else:
                self._early_stop = save if self._early_stop is None else (self._early_stop and save)

    def note_hangup(self, action: str, output: str | None = None) -> bool:
        """The terminal under the run went away: say so in events.jsonl and on every screen.
        `action` is run.on_hangup's value; `output` where the process's output goes now.
        False while the run has no log yet (call again later)."""
        t = self.trainer
        log = getattr(t, "log", None)
        if log is None:
            return False
        step = t.progress.step
        text = ("the terminal went away; training goes on" + (f", output to {output}" if output else "")
                if action == "continue" else "the terminal went away; saving and stopping (run.on_hangup: stop)")
        try:
            log.event("hangup", step, action=action, **({"output": output} if output else {}))
        except (OSError, ValueError):
            return False  # the log is closed: the run has ended
        self.channel.emit(ev.LogLine(step, "warning", text))
        return True

    def outcome(self) -> tuple[int, str]:
        """The exit code and the closing words for the terminal, once the thread has ended."""
        t, err = self.trainer, self.error
        if isinstance(err, UserError):
            return err.exit_code, str(err)
        run_dir = getattr(t, "run_dir", None)
        if t is None or self.final_state is None:
            return EXIT_FAILED, f"the run failed: {err}"
        if self.final_state == State.FINISHED:
            return EXIT_OK, f"finished at step {t.step}: {run_dir}"
        saved, resumable = _checkpoint_words(t)
        resume = f"resume with: danlu run --resume {run_dir}" if resumable else f"run directory: {run_dir}"
        if self.final_state == State.STOPPED and getattr(t, "fault", None):
            # a fault is not a success, whatever was saved: scripts and schedulers must see it
            return EXIT_FAULT, (f"stopped on a fault at step {t.step}: {t.fault}\n{saved}\n"
                                + ("after fixing the cause, " if resumable else "") + resume)
        if self.final_state == State.STOPPED:
            return EXIT_OK, f"stopped at step {t.step}; {saved}\n{resume}"
        return EXIT_FAILED, (f"the run failed: {t.error or err}\n{saved}\n"
                             + ("after fixing the cause, " if resumable else "") + resume)


# Checkpoints written as a run ends, and what the closing words call them.
_SAVED_ON_THE_WAY_OUT = {CheckpointReason.LAST: "checkpoint", CheckpointReason.FAULT: "fault checkpoint",
                         CheckpointReason.CRASH: "crash checkpoint"}


def _checkpoint_words(t: Any) -> tuple[str, bool]:
    """Which checkpoint really holds the run's last good state, and whether there is one to resume."""
    last = getattr(t, "last_checkpoint", None)
    if last is None or not Path(last.path).is_file():
        return "no checkpoint was written, so there is nothing to resume: start the run again", False
    if last.step == t.step and last.written and last.reason in _SAVED_ON_THE_WAY_OUT:
        return f"{_SAVED_ON_THE_WAY_OUT[last.reason]} saved: {last.path} (step {last.step})", True
    if last.step == t.step:
        return f"last good checkpoint: {last.path} (step {last.step})", True
    return f"no checkpoint at step {t.step}; the last good one is {last.path} (step {last.step})", True


def start_engine(cfg: Config, channel: Channel, *, resume: str | os.PathLike | None = None,
                 warm_start: str | os.PathLike | None = None, interactive: bool = True,
                 serve: bool = True) -> EngineThread:
    """Start a run in its own thread and return the thread. With `serve` (the default, what every
    `danlu run` does) the run listens on its control socket."""
    thread = EngineThread(cfg, channel, resume=resume, warm_start=warm_start, interactive=interactive,
                          serve=serve)
    thread.start()
    return thread
