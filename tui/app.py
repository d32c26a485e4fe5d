"""The App: composes the dashboard, owns the engine thread's lifecycle, handles quitting.

Build it with `create_app(channel, start_engine)`; the CLI and the tests share
this one factory. The engine thread is started on mount and, on any way out,
asked to stop and joined with a bounded wait, so no thread is left behind.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

from textual.app import App
from textual.binding import Binding
from textual.screen import ModalScreen, Screen

from danlu.engine.control import events as ev
from danlu.engine.control.channel import Channel

from .pump import EventPump
from .run_state import RunState
from .screens.dashboard import DashboardScreen
from .screens.quit_dialog import QuitDialog
from .widgets.key_footer import binding_commands

# How long quitting waits for the engine to stop (a final save can take a while).
STOP_TIMEOUT_S = 120.0
# After that, at unmount, a last short join.
FINAL_JOIN_S = 5.0

StartEngine = Callable[[], threading.Thread]
# make_starter(config, warm_start checkpoint) -> a StartEngine for a new run: what restart with changes uses
MakeStarter = Callable[[Any, "str | None"], StartEngine]


class DanluApp(App):
    """Thin: screens do the work; the app routes quit and owns the engine thread."""

    CSS_PATH = [Path(__file__).parent / "app.tcss", Path(__file__).parent / "dashboard.tcss"]
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        # ctrl+c must not kill a run mid-step; it opens the same dialog as q.
        Binding("ctrl+c", "request_quit", "Quit", show=False, priority=True, id="quit-ctrl-c"),
        Binding("ctrl+q", "request_quit", "Quit", show=False, priority=True, id="quit-ctrl-q"),
    ]

    def __init__(self, channel: Channel, start_engine: StartEngine | None = None,
                 *, title: str = "danlu", make_starter: MakeStarter | None = None,
                 remote: dict | None = None, can_detach: bool = False):
        super().__init__()
        # Attached to a run in another process (danlu attach): the server's hello. Quitting then
        # detaches by default; stopping is a command to that process.
        self.remote = remote
        # `d` (and, attached, the quit dialog) leaves the run going: `danlu run` in its own session
        # (tui/detach.py) and every attached dashboard can
        self.can_detach = can_detach or remote is not None
        self.detached = False
        self.title = title
        self.channel = channel
        self.pump = EventPump(channel)
        self.start_engine = start_engine
        self.engine_thread: threading.Thread | None = None
        self.toasts: deque[str] = deque(maxlen=200)  # every toast shown, newest last
        self.quitting = False
        self.make_starter = make_starter
        self.restarting = False
        self._stop_timer = None  # polls for the engine's end after a stop was sent

    def on_mount(self) -> None:
        if self.remote is not None:
            self.pump.attach(self.remote)  # the history first: the first frame shows it
            self._closed_told = False
            self.set_interval(0.5, self._watch_connection)
        self.push_screen(DashboardScreen(self.pump))
        if self.start_engine is not None:
            self.engine_thread = self.start_engine()

    @property
    def engine_alive(self) -> bool:
        return self.engine_thread is not None and self.engine_thread.is_alive()

    def toast(self, message: str, *, title: str = "", severity="information",
              timeout: float | None = None) -> None:
        """notify(), remembered in `toasts` so tests and the log can read them back."""
        self.toasts.append(message)
        self.notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    # -- quitting ------------------------------------------------------------
    def action_request_quit(self) -> None:
        if self.quitting or isinstance(self.screen, QuitDialog):
            return
        running = self.engine_alive or (self.engine_thread is None and not self.pump.state.final)
        if self.remote is not None:
            running = running and not getattr(self.channel, "closed", None)
        self.push_screen(QuitDialog(running, detach=self.remote is not None,
                                    nonfinite=self.pump.state.nonfinite_pause), self._quit_chosen)

    def action_quit(self) -> None:  # the palette's "Quit" goes through the dialog too
        self.action_request_quit()

    def _quit_chosen(self, choice) -> None:
        if choice == "detach":
            self.detach()
        elif choice is not None and self.remote is not None:
            self.stop_remote()
        elif choice is not None:
            self.stop_and_exit(save=(choice == "save"))

    def detach(self, reason: str = "detached") -> None:
        """Leave the run going: an attached dashboard just closes; `danlu run` hands its terminal back
        (run_dashboard then moves the process's output to output.log and tells its parent to exit)."""
        if self.quitting:
            return
        if not self.can_detach:
            self.toast("this dashboard cannot detach (danlu run forks only with a terminal on stdin and "
                       "stdout, and not with DANLU_NO_DETACH=1); q stops the run", severity="warning")
            return
        if self.remote is None and (self.pump.state.run is None or not self.engine_alive):
            self.toast("the run is still starting (or has ended); detach in a moment", severity="warning")
            return
        self.detached = True
        self.detach_reason = reason
        self.exit(return_code=0)

    def _watch_connection(self) -> None:
        """Attached: say once why the stream ended (the run ended, or this client fell behind)."""
        reason = getattr(self.channel, "closed", None)
        if reason is None or self._closed_told or self.quitting:
            return
        self._closed_told = True
        dash = self._dashboard()
        if dash is not None:
            dash.tick()  # the run's last events first
        if not self.pump.state.final:
            self.toast(f"connection ended: {reason}. danlu attach reconnects.", severity="error", timeout=30)

    def stop_remote(self) -> None:
        """Attached: ask the run to save and stop, keep the view live until it has ended, then exit."""
        self.quitting = True
        self.pump.send(ev.stop(save=True))
        self.toast("stopping the run: finishing the current step and saving")
        deadline = time.monotonic() + STOP_TIMEOUT_S

        def poll() -> None:
            dash = self._dashboard()
            dash.tick() if dash is not None else self.pump.tick()
            if self.pump.state.final or getattr(self.channel, "closed", None) or time.monotonic() > deadline:
                self.exit(return_code=0 if self.pump.state.final else 1)

        self.set_interval(0.2, poll)

    def stop_and_exit(self, save: bool = True) -> None:
        """Ask the engine to stop, keep the dashboard live until it has, then exit."""
        self.quitting = True
        if self.engine_thread is None and not self.pump.state.final:
            self.pump.send(ev.stop(save=save))  # an engine we did not start may be listening
        if self.engine_alive:
            self.toast("stopping: finishing the current step" + (" and saving" if save else ""))
        self._stop_engine(save, then=self.exit, timed_out=lambda: self.exit(
            return_code=1, message=f"danlu: the engine did not stop within {STOP_TIMEOUT_S:.0f}s."))

    def _stop_engine(self, save: bool, *, then: Callable[[], None], timed_out: Callable[[], None],
                     give_up: Callable[[], bool] = lambda: False) -> None:
        """Send stop to a live engine and call `then` once its thread has ended (never blocks the UI).

        `timed_out` runs instead after STOP_TIMEOUT_S; polling ends early, calling neither,
        when `give_up()` turns true.
        """
        if self._stop_timer is not None:
            self._stop_timer.stop()
            self._stop_timer = None
        if not self.engine_alive:
            then()
            return
        self.pump.send(ev.stop(save=save))
        deadline = time.monotonic() + STOP_TIMEOUT_S

        def poll() -> None:
            if give_up():
                done()
            elif not self.engine_alive:
                done()
                then()
            elif time.monotonic() > deadline:
                done()
                timed_out()

        def done() -> None:
            if self._stop_timer is not None:
                self._stop_timer.stop()
            self._stop_timer = None

        self._stop_timer = self.set_interval(0.1, poll)

    def on_unmount(self) -> None:
        # Any other way out (an exception, the test harness): still stop and join.
        if self.engine_alive and not self.detached:
            self.pump.send(ev.stop(save=True))
            self.engine_thread.join(FINAL_JOIN_S)

    # -- restart with changes -------------------------------------------------
    def _dashboard(self) -> DashboardScreen | None:
        for screen in self.screen_stack:
            if isinstance(screen, DashboardScreen):
                return screen
        return None

    def restart_with(self, config: Any, changes: list[str]) -> bool:
        """Stop the run with a checkpoint, then start a new run from it with `config` (never blocks)."""
        if self.make_starter is None:
            self.toast("restart with changes is not available here: this dashboard did not start the engine",
                       severity="warning")
            return False
        if self.restarting or self.quitting:
            return False
        run = self.pump.state.run
        if run is None or not run.run_dir:
            self.toast("the run has not started yet; try again in a moment", severity="warning")
            return False
        self.restarting = True
        request = {"config": config, "changes": list(changes), "old_run": run.run_dir}
        if self.engine_alive:
            self.toast("restarting: finishing the current step and saving a checkpoint…")

        def timed_out() -> None:
            self.restarting = False
            self.toast(f"restart abandoned: the run did not stop within {STOP_TIMEOUT_S:.0f}s", severity="error")

        def quit_wins() -> bool:  # quitting while the old run stops: no new run
            if self.quitting:
                self.restarting = False
            return self.quitting

        self._stop_engine(True, then=lambda: self._restart_from(request), timed_out=timed_out, give_up=quit_wins)
        return True

    def _restart_from(self, req: dict[str, Any]) -> None:
        """The old run has stopped: start the new one from its last checkpoint."""
        self.restarting = False
        dash = self._dashboard()
        if dash is not None:
            dash.tick()  # fold the old run's last events (its stop, its checkpoint) first
        old_run = Path(req["old_run"])
        last = old_run / "checkpoints" / "last.pt"
        saved = self.pump.state.last_checkpoint
        if saved is not None and Path(saved.path).name == "last.pt":
            last, step = Path(saved.path), saved.step
        else:
            step = self.pump.state.step
        if not last.is_file():
            self.toast(f"restart abandoned: no checkpoint {last} (see the event log)", severity="error")
            return
        cfg = copy.deepcopy(req["config"])
        cfg.run.parent = str(old_run)
        cfg.run.parent_step = int(step)
        note = f"restarted from {old_run.name} step {step} with: " + "; ".join(req["changes"])
        self.restart_engine(self.make_starter(cfg, str(last)), note=note)

    def restart_engine(self, start_engine: StartEngine, note: str | None = None) -> None:
        """Start a new engine on the same channel, the dashboard on a fresh RunState.

        The previous engine thread must have ended (restart_with waits for that).
        """
        if self.engine_alive:
            raise RuntimeError("restart_engine: the previous engine is still running")
        self.pump.state = RunState()
        self.start_engine = start_engine
        self.engine_thread = start_engine()
        dash = self._dashboard()
        if dash is not None:
            dash.new_run(note)
        if note:
            self.toast(note)

    # -- command palette: every dashboard key is also a command ---------------
    def get_system_commands(self, screen: Screen):
        yield from super().get_system_commands(screen)
        if not isinstance(screen, ModalScreen):  # the dashboard, and the live editor over it
            yield from binding_commands(screen)


def create_app(channel: Channel, start_engine: StartEngine | None = None,
               *, title: str = "danlu", make_starter: MakeStarter | None = None,
               remote: dict | None = None, can_detach: bool = False) -> DanluApp:
    """The dashboard for one run: events come from `channel`; `start_engine()` starts it.

    `remote`: the hello of a run in another process (danlu attach; `channel` is then a RemoteChannel).
    `can_detach`: `d` hands the terminal back and the run goes on (see tui/detach.py).
    `make_starter(config, warm_start)` builds the start_engine of a new run from a checkpoint:
    with it, the live editor's "restart with changes" works (without, it says it is unavailable).
    """
    return DanluApp(channel, start_engine, title=title, make_starter=make_starter, remote=remote,
                    can_detach=can_detach)
