"""The live dashboard: charts and panels fed by the EventPump, keys that send commands."""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.events import Key, Resize
from textual.screen import Screen

from danlu.engine.control import events as ev

from ..describe import applied_text, describe, short_path, state_detail
from ..pump import EventPump
from ..widgets.event_log import EventLog
from ..widgets.grad_panel import GradPanel
from ..widgets.key_footer import KeyFooter
from ..widgets.loss_chart import LossChart
from ..widgets.lr_panel import LrPanel
from ..widgets.memory_panel import MemoryPanel
from ..widgets.progress_panel import ProgressPanel
from ..widgets.status_line import StatusLine
from ..widgets.val_panel import ValPanel
from .freeze_dialog import FreezeDialog
from .hparam_dialog import HparamDialog
from .lr_dialog import LrDialog
from .profile_dialog import ProfileDialog
from .profile_result import ProfileResult

# Drain the channel 4 times a second, and 20 while a command the user sent waits for its answer
# (pause, LR, save: the answer shows within ANSWER_TICK_S), for at most ANSWER_WAIT_S. Every
# wakeup of the UI thread is time taken from the training thread under the GIL, so the steady
# rate stays low (docs/performance.md, "What we learned").
TICK_S = 0.25
ANSWER_TICK_S = 0.05
ANSWER_WAIT_S = 3.0
# Any event other than new metrics (status, command answer, alert but a spike, checkpoint)
# redraws everything at once. New metrics alone redraw the text panels (step, rates, ETA, memory) at
# most every REDRAW_S, and the charts (most of a full frame's cost, the series fold included)
# spaced so that their measured cost stays under UI_BUDGET of the wall clock: never more often
# than REDRAW_S, never less often than CHARTS_MAX_S. Chart frames are most of what the dashboard
# takes from a Python-bound training loop (docs/performance.md, "What we learned").
REDRAW_S = 1.0
UI_BUDGET = 0.005
CHARTS_MAX_S = 4.0
COMPACT_W, COMPACT_H = 100, 30  # below either, the compact layout
# Actions that talk to a live engine; disabled once the run has ended.
LIVE_ACTIONS = ("toggle_pause", "set_lr", "set_hparam", "save", "evaluate", "edit_config", "freeze", "profile",
                "lr_find")
# Answers worth a toast (the rest go to the event log only).
TOAST_KINDS = (ev.CommandKind.SET_LR, ev.CommandKind.SET_HPARAM, ev.CommandKind.FREEZE, ev.CommandKind.UNFREEZE)
# Checkpoints the engine writes by itself are logged, not toasted (one per eval would be noise).
QUIET_CHECKPOINTS = (ev.CheckpointReason.PERIODIC, ev.CheckpointReason.BEST)
# Spike alerts come at most once per 100 steps from the engine, which can be 10 a second on a fast
# loop: one toast per this many seconds, the rest in the event log.
SPIKE_TOAST_S = 10.0
# The newest lines of a run's past written to the event log: each costs the log a wrapped
# render, and a long run has thousands (every eval, every checkpoint); events.jsonl has them all.
HISTORY_LOG_LINES = 200


class DashboardScreen(Screen):
    """Reads a RunState the pump keeps current; sends commands through the pump."""

    BINDINGS = [
        Binding("space", "toggle_pause", "Pause/Resume", id="pause"),
        Binding("l", "set_lr", "LR", tooltip="Change the learning rate", id="lr"),
        Binding("h", "set_hparam", "Hparams", tooltip="Change a hot hyperparameter", id="hparams"),
        Binding("s", "save", "Save ckpt", tooltip="Save a checkpoint now", id="save"),
        Binding("e", "evaluate", "Eval", tooltip="Evaluate on the validation set now", id="eval"),
        Binding("f", "lr_find", "LR find", id="lr-find",
                tooltip="LR range test on a copy of the model (the run pauses, then goes on unharmed)"),
        Binding("g", "toggle_log", "Log scale", tooltip="Loss chart: linear/log y axis", id="log-scale"),
        Binding("z", "freeze", "Freeze", id="freeze",
                tooltip="Freeze or unfreeze parameters by regex (unfrozen ones join at lr x lr_mult)"),
        Binding("c", "edit_config", "Config", id="edit-config",
                tooltip="Edit the run's config: hot changes (lr, wd, momentum, clip, intervals) apply now"),
        Binding("p", "profile", "Profile", id="profile",
                tooltip="Profile the next N steps with torch.profiler: top ops, data-loading share, a trace"),
        Binding("q", "app.request_quit", "Quit", tooltip="Stop training and quit", id="quit"),
        Binding("d", "detach", "Detach", id="detach",
                tooltip="Leave the run going and get the shell back; danlu attach brings this view back"),
    ]
    # When the footer cannot show every key (under ~93 columns), it leaves out keys from the end
    # of this list first; "^p more" then says the palette has them (every key above is there).
    FOOTER_PRIORITY = ("quit", "pause", "detach", "edit-config", "lr", "save", "hparams", "eval", "log-scale",
                       "lr-find", "freeze", "profile")

    def __init__(self, pump: EventPump):
        super().__init__(id="dashboard")
        self.pump = pump
        self.log_scale = False
        self._pause_intent: bool | None = None  # what space last asked for, until the engine says
        self._shown_version = -1    # the state version the charts (and so everything) show
        self._panels_version = -1   # the version the text panels show
        self._drawn_at = 0.0        # last full redraw (charts too)
        self._panels_at = 0.0
        self._frame_cpu = 0.0       # UI thread CPU seconds the last full redraw took
        self._measuring: float | None = None
        self._was_final = False
        self._last_alert = ""  # the failed status usually repeats it: say it once
        self._spike_toast_at = -SPIKE_TOAST_S
        self._history_logged = None  # the pump's history whose lines are in the event log
        self._last_saved: str | None = None  # the end-of-run checkpoint, for the end-of-run toast

    @property
    def state(self):
        return self.pump.state

    def compose(self) -> ComposeResult:
        yield StatusLine(id="status")
        with Horizontal(id="top"):
            yield LossChart(id="loss")
            with Vertical(id="side"):
                yield ProgressPanel(id="progress")
                yield ValPanel(id="val")
                yield MemoryPanel(id="memory")
        with Horizontal(id="bottom"):
            yield LrPanel(id="lr")
            yield GradPanel(id="grad")
        yield EventLog(id="log")
        yield KeyFooter(self.FOOTER_PRIORITY)

    def on_mount(self) -> None:
        self.set_interval(TICK_S, self.tick)
        self._answer_timer = self.set_interval(ANSWER_TICK_S, self._answer_tick, pause=True)
        self.pump.on_send = lambda _command: self._answer_timer.resume()
        self.redraw()

    def on_unmount(self) -> None:
        self.pump.on_send = None

    def _answer_tick(self) -> None:
        """The fast drain while a sent command waits for its answer; it stops itself."""
        self.tick()
        if not self.pump.awaiting or time.monotonic() - self.pump.sent_at > ANSWER_WAIT_S:
            self._answer_timer.pause()

    def on_resize(self, event: Resize) -> None:
        w, h = event.size
        compact = w < COMPACT_W or h < COMPACT_H
        self.set_class(compact, "-compact")
        # the footer follows the width by itself (KeyFooter.on_resize); this keeps it in step when
        # the size changed while a dialog was on top
        self.query_one(KeyFooter).fit(w)

    # -- events in ---------------------------------------------------------
    def tick(self) -> None:
        """Drain the channel, log what happened, redraw if anything changed."""
        if self._measuring is not None:  # the last full frame has been rendered since (timer order)
            self._frame_cpu, self._measuring = time.thread_time() - self._measuring, None
        log = self.query_one(EventLog)
        notable = self.pump.tick()
        if self.pump.history is not self._history_logged:
            self._write_history(log)
        for e in notable:
            run_dir = self.state.run.run_dir if self.state.run else None
            if self._repeats_alert(e):
                log.add("error", f"step {e.step}: failed (reason above)")
            else:
                line = describe(e, self.pump.sent, run_dir)
                if line is not None:
                    log.add(*line)
                self._toast(e, run_dir)
            if isinstance(e, ev.Alert):
                self._last_alert = e.message
            if isinstance(e, ev.StatusChanged):
                self._pause_intent = None
            if isinstance(e, ev.ProfileDone):
                self._show_profile(e, run_dir)
        version, now = self.state.version, time.monotonic()
        # a spike is a marker on the loss chart: it waits for the next chart frame like new metrics
        urgent = any(not (isinstance(e, ev.Alert) and e.kind == ev.AlertKind.SPIKE) for e in notable)
        if version != self._shown_version and (urgent or now - self._drawn_at >= self.charts_interval()):
            self.redraw()
        elif version != self._panels_version and now - self._panels_at >= REDRAW_S:
            self._redraw_panels()

    def _write_history(self, log: EventLog) -> None:
        """The past read from the run's files: into the log as it was, without toasts."""
        self._history_logged = self.pump.history
        backlog, self.pump.backlog = self.pump.backlog, []
        run_dir = self.state.run.run_dir if self.state.run else None
        lines = [line for e in backlog if (line := describe(e, self.pump.sent, run_dir)) is not None]
        for line in lines[-HISTORY_LOG_LINES:]:
            log.add(*line)
        h = self.pump.history
        if h is not None:
            upto = f"steps 1-{h.last_step}" if h.last_step else "no steps"
            log.add("info", f"history from the run's files: {upto}, {len(h.evals)} evaluations")

    def charts_interval(self) -> float:
        """Seconds between metrics-only chart redraws: the last frame's cost over the budget."""
        return min(max(REDRAW_S, self._frame_cpu / UI_BUDGET), CHARTS_MAX_S)

    def _repeats_alert(self, e) -> bool:
        return (isinstance(e, ev.StatusChanged) and e.state == ev.State.FAILED and bool(e.detail)
                and e.detail in self._last_alert)

    def _toast(self, e, run_dir: str | None = None) -> None:
        notify = self.app.toast
        if isinstance(e, ev.CommandApplied) and e.kind in TOAST_KINDS:
            notify(f"{applied_text(e, self.pump.sent.get(e.command_id))} at step {e.step}")
        elif isinstance(e, ev.CommandRejected):
            notify(f"{e.kind} rejected: {e.reason}", severity="warning")
        elif isinstance(e, ev.CheckpointSaved) and e.reason == ev.CheckpointReason.LAST:
            self._last_saved = short_path(e.path, run_dir)  # said by the end-of-run toast, one toast for the end
        elif isinstance(e, ev.CheckpointSaved) and e.reason not in QUIET_CHECKPOINTS:
            notify(f"checkpoint saved at step {e.step}: {short_path(e.path, run_dir)}")
        elif isinstance(e, ev.Alert):
            if e.kind == ev.AlertKind.SPIKE:  # the event log has every one; a toast at most every SPIKE_TOAST_S
                if time.monotonic() - self._spike_toast_at < SPIKE_TOAST_S:
                    return
                self._spike_toast_at = time.monotonic()
            notify(f"step {e.step}: {e.message}", title=e.kind,
                   severity="warning" if e.kind in (ev.AlertKind.SPIKE, ev.AlertKind.NONFINITE) else "error")
        elif isinstance(e, ev.StatusChanged) and e.state in ev.FINAL_STATES:
            # the toast names the state and the step: "finished at step 40" and "stopped on a fault at
            # step 7: ..." would say them twice
            detail = state_detail(e.state, e.detail).replace(f"at step {e.step}", "").strip(" :—-")
            detail = detail.replace("  ", " ").replace(" :", ":")
            saved, self._last_saved = self._last_saved, None
            notify(f"run {e.state} at step {e.step}" + (f": {detail}" if detail else "")
                   + (f"; saved {saved}" if saved else ""),
                   severity="error" if e.state == ev.State.FAILED else "information")

    def redraw(self) -> None:
        """Everything, charts included."""
        s = self.state
        self._measuring = time.thread_time()
        self._shown_version = s.version
        self._drawn_at = time.monotonic()
        self._redraw_panels()
        self.query_one(LossChart).show(s, log=self.log_scale)
        self.query_one(LrPanel).show(s)
        self.query_one(GradPanel).show(s)

    def _redraw_panels(self) -> None:
        """The text panels only: step, rates, ETA, validation, memory (cheap)."""
        s = self.state
        self._panels_version = s.version
        self._panels_at = time.monotonic()
        self.query_one(StatusLine).show(s)
        self.query_one(ProgressPanel).show(s)
        self.query_one(ValPanel).show(s)
        self.query_one(MemoryPanel).show(s)
        if s.final != self._was_final:
            self._was_final = s.final
            self.refresh_bindings()

    # -- commands out ------------------------------------------------------
    def check_action(self, action: str, parameters) -> bool | None:
        if action in LIVE_ACTIONS and self.state.final:
            return False  # left out of the footer and the palette: the engine is gone (on_key says so)
        if action == "detach":  # only where the run can go on without this terminal, and while it does
            return bool(getattr(self.app, "can_detach", False)) and not self.state.final
        return True

    def palette_skips(self, action: str) -> bool:
        """The palette leaves out what the footer left out at the run's end (key_footer.binding_commands)."""
        return self.state.final and (action in LIVE_ACTIONS or action == "detach")

    def on_key(self, event: Key) -> None:
        """A key of the live run pressed after its end: say why nothing happens."""
        if self.state.final and event.key in self._ended_keys():
            event.stop()
            self.app.toast(f"the run has {self.state.state}: {event.key} no longer applies; q quits",
                           severity="warning", timeout=3)

    def _ended_keys(self) -> set[str]:
        return {k.strip() for b in self.BINDINGS if isinstance(b, Binding)
                and (b.action in LIVE_ACTIONS or b.action == "detach") for k in b.key.split(",")}

    def action_detach(self) -> None:
        self.app.detach()

    def action_toggle_pause(self) -> None:
        paused = self._pause_intent if self._pause_intent is not None else self.state.state == ev.State.PAUSED
        self.pump.send(ev.resume() if paused else ev.pause())
        self._pause_intent = not paused

    def action_set_lr(self) -> None:
        self.app.push_screen(LrDialog(self.state.groups, list(self.state.lrs)), self._send)

    def action_set_hparam(self) -> None:
        self.app.push_screen(HparamDialog(self.state.groups, self._current_hparams()), self._send)

    def action_freeze(self) -> None:
        s = self.state
        self.app.push_screen(FreezeDialog(s.trainable_params, s.total_params, s.groups), self._send)

    def action_profile(self) -> None:
        self.app.push_screen(ProfileDialog(), self._send)

    def _show_profile(self, e: ev.ProfileDone, run_dir: str | None) -> None:
        """The result over the dashboard; over another dialog, a toast (the event log has the line)."""
        if self.app.screen is self:
            self.call_after_refresh(self.app.push_screen, ProfileResult(e, run_dir))
        else:
            self.app.toast(f"profile of steps {e.first_step}-{e.step} done: see the event log", timeout=6)

    def action_save(self) -> None:
        self.pump.send(ev.save_checkpoint())
        self.app.toast("checkpoint requested…", timeout=2)

    def action_evaluate(self) -> None:
        self.pump.send(ev.eval_now())

    def action_lr_find(self) -> None:
        from .lr_find_dialog import LrFindDialog
        if self.state.run is None:
            self.app.toast("the run has not started yet; try again in a moment", severity="warning")
            return
        self.app.push_screen(LrFindDialog(self.pump), self._send_all)

    def action_toggle_log(self) -> None:
        self.log_scale = not self.log_scale
        self.query_one(LossChart).show(self.state, log=self.log_scale)

    def _send(self, command: ev.Command | None) -> None:
        if command is not None:
            self.pump.send(command)

    def action_edit_config(self) -> None:
        from .editor_live import LiveEditorScreen  # the editor loads only when asked for
        cfg = self.state.run.config if self.state.run else None
        if not cfg:
            self.app.toast("the run's config is not known yet; try again in a moment", severity="warning")
            return
        run_dir = self.state.run.run_dir if self.state.run else None
        self.app.push_screen(LiveEditorScreen(cfg, run_dir=run_dir), self._send_all)

    def _send_all(self, result) -> None:
        from .editor_live import RestartRequest
        if isinstance(result, RestartRequest):
            self.app.restart_with(result.config, result.changes)
            return
        for command in result or []:
            self.pump.send(command)

    def new_run(self, note: str | None = None) -> None:
        """The app started a new engine (restart with changes): show its fresh RunState."""
        self._pause_intent = None
        self._last_alert = ""
        self._shown_version = self._panels_version = -1
        if note:
            self.query_one(EventLog).add("info", note)
        self.redraw()
        self.refresh_bindings()

    def _current_hparams(self) -> dict[str, str]:
        return self.state.current_hparams()
