"""The LR range test mid-run: its memory stated first, then the test on a copy, then the curve.

It talks to the engine through the pump (a check, then the test) and reads the answers from the
RunState; what it returns is the commands to send on closing: set_lr (rescale) on Apply, and a
resume when the run was running before the dialog paused it. Cancel changes no LR.
"""

from __future__ import annotations

import time

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from danlu.engine.control import events as ev

from ..format import nbytes, num
from ..lr_curve import render_curve, summary
from ..pump import EventPump

POLL_S = 0.1
DEFAULT_SWEEP = "1e-7 10 100"


def parse_sweep(text: str) -> tuple[float, float, int]:
    """'START END STEPS' (e.g. '1e-7 10 100') -> numbers; ValueError saying what to type."""
    parts = text.replace(",", " ").split()
    try:
        start, end, steps = float(parts[0]), float(parts[1]), int(parts[2])
    except (IndexError, ValueError):
        raise ValueError(f"type three numbers: START END STEPS, e.g. {DEFAULT_SWEEP}") from None
    if len(parts) > 3:
        raise ValueError(f"three numbers only: START END STEPS, e.g. {DEFAULT_SWEEP}")
    if not (0 < start < end) or steps < 10:
        raise ValueError("the sweep needs 0 < START < END and STEPS >= 10")
    return start, end, steps


def memory_text(m: dict) -> str:
    """What the copy takes, and whether it fits, in words."""
    def mib(n):
        if not isinstance(n, (int, float)):
            return "unknown"
        return f"{n / (1 << 30):.2f} GiB" if n >= 1 << 30 else nbytes(n)  # a small model: KiB, not "0.0 MiB"
    opt = mib(m.get("optimizer")) + (" (estimated: no state yet)" if m.get("optimizer_estimated") else "")
    lines = [f"memory: a copy of the weights {mib(m.get('weights'))} + grads {mib(m.get('grads'))} "
             f"+ optimizer state {opt} = [b]{mib(m.get('total'))}[/b]",
             f"free on {m.get('device', '?')}: {mib(m.get('free'))}"]
    lines.append("it fits" if m.get("fits") else "[b]it does NOT fit: the test is refused[/b]")
    return "\n".join(lines)


class LrFindDialog(ModalScreen[list]):
    """Returns the commands to send when it closes ([] for none)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="lrf-cancel")]

    def __init__(self, pump: EventPump):
        super().__init__(id="lr-find-dialog")
        self.pump = pump
        self.was_paused = pump.state.state == ev.State.PAUSED
        self.check_id: int | None = None
        self.run_id: int | None = None
        self.fits = False
        self.result: ev.LrFindDone | None = None
        self._running_text = ""
        self._started_at = 0.0

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog") as box:
            box.border_title = "LR range test (on a copy of the model)"
            yield Static("The run pauses; a copy of the model and optimizer trains for STEPS steps while the "
                         "LR grows from START to END (edit them below), on batches of its own. The run "
                         "comes back exactly as it was.", id="lrf-intro", classes="hint")
            yield Static("checking memory…", id="lrf-memory")
            yield Input(DEFAULT_SWEEP, placeholder="START END STEPS", id="lrf-sweep", compact=True)
            yield Static("", id="lrf-error", classes="error")
            yield Static("", id="lrf-plot")
            yield Static("", id="lrf-summary")
            with Horizontal(classes="buttons"):
                yield Button("Start", variant="primary", id="lrf-start", compact=True, disabled=True)
                yield Button("Apply", variant="primary", id="lrf-apply", compact=True)
                yield Button("Cancel", id="lrf-cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#lrf-apply").display = False
        self.query_one("#lrf-plot").display = False
        self.query_one("#lrf-summary").display = False
        self.check_id = self.pump.send(ev.lr_find(check=True)).id
        self.set_interval(POLL_S, self._poll)

    # -- answers in --------------------------------------------------------
    def _poll(self) -> None:
        if self.run_id is not None and self._running_text:
            seconds = int(time.monotonic() - self._started_at)
            self.query_one("#lrf-memory", Static).update(f"{self._running_text} {seconds} s")
        answers = self.pump.state.lr_find_answers
        if self.check_id is not None and self.check_id in answers:
            self._checked(answers.pop(self.check_id))
            self.check_id = None
        if self.run_id is not None and self.run_id in answers:
            self._ran(answers.pop(self.run_id))
            self.run_id = None

    def _checked(self, answer) -> None:
        memory = self.query_one("#lrf-memory", Static)
        if isinstance(answer, ev.CommandRejected):
            memory.update(f"the engine cannot run the test: {answer.reason}")
            return
        m = answer.new if isinstance(answer.new, dict) else {}
        self.fits = bool(m.get("fits"))
        memory.update(memory_text(m))
        start = self.query_one("#lrf-start", Button)
        start.disabled = not self.fits
        if self.fits:
            start.focus()

    def _ran(self, answer) -> None:
        error = self.query_one("#lrf-error", Static)
        if isinstance(answer, ev.CommandRejected):
            error.update(f"not run: {answer.reason}")
            self.query_one("#lrf-cancel", Button).label = "Close"
            return
        res = self.pump.state.lr_find
        if res is None:
            error.update("the test ran but its result did not arrive; see the event log")
            return
        self.result = res
        self._show_result(res)

    def _show_result(self, r: ev.LrFindDone) -> None:
        w, h = self.app.size
        width = max(40, min(110, w - 10))
        height = max(4, min(14, h - 19))  # the summary and the buttons stay on screen at 80x24
        plot = render_curve(r.lrs, r.losses, r.smoothed, r.suggestion, r.min_over_10, width=width, height=height)
        p = self.query_one("#lrf-plot", Static)
        p.update("\n".join(plot))
        p.display = True
        s = self.query_one("#lrf-summary", Static)
        if r.suggestion is None:
            lines = summary(None, r.min_over_10, r.rule, r.stopped)
        else:
            lines = [f"[b]suggested lr {num(r.suggestion)}[/b] (^)   min/10 {num(r.min_over_10)} (v)   "
                     f"now {num(self.pump.state.lrs[0]) if self.pump.state.lrs else '–'}",
                     f"rule: {r.rule}"]
            if r.stopped:
                lines.append(f"stopped early: {r.stopped}")
        goes_on = "" if self.was_paused else "; either button resumes the run"
        lines.append(f"step {r.step}; saved {r.path}; Apply sends set_lr (rescale){goes_on}")
        s.update("\n".join(lines))
        s.display = True
        self.query_one("#lrf-intro").display = False
        self.query_one("#lrf-memory").display = False
        self.query_one("#lrf-sweep").display = False
        self.query_one("#lrf-start").display = False
        apply = self.query_one("#lrf-apply", Button)
        apply.label = f"Apply lr {num(r.suggestion)}"
        apply.display = r.suggestion is not None
        self.query_one(".dialog").add_class("-wide")
        if r.suggestion is not None:
            apply.focus()

    # -- buttons -----------------------------------------------------------
    @on(Input.Submitted, "#lrf-sweep")
    @on(Button.Pressed, "#lrf-start")
    def start(self) -> None:
        if not self.fits or self.run_id is not None or self.result is not None:
            return
        try:
            start, end, steps = parse_sweep(self.query_one("#lrf-sweep", Input).value)
        except ValueError as e:
            self.query_one("#lrf-error", Static).update(str(e))
            return
        self.query_one("#lrf-error", Static).update("")
        self.run_id = self.pump.send(ev.lr_find(start, end, steps)).id
        self.query_one("#lrf-start", Button).disabled = True
        self._started_at = time.monotonic()
        self._running_text = f"running: {steps} steps on a copy, lr {start:g} → {end:g}; the run is paused…"
        self.query_one("#lrf-memory", Static).update(self._running_text)

    def _resume(self) -> list:
        """A resume, when this dialog paused a running run (the test leaves it paused)."""
        paused_now = self.pump.state.state == ev.State.PAUSED or self.run_id is not None
        return [ev.resume()] if paused_now and not self.was_paused else []

    @on(Button.Pressed, "#lrf-apply")
    def apply(self) -> None:
        r = self.result
        if r is None or r.suggestion is None:
            return
        self.dismiss([ev.set_lr(r.suggestion, mode=ev.LrMode.RESCALE)] + self._resume())

    @on(Button.Pressed, "#lrf-cancel")
    def action_cancel(self) -> None:
        self.dismiss(self._resume())
