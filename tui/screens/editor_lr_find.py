"""The editor's LR range test (F4, beside the LR preview): `danlu lr-find` on the config being
edited, in a thread worker, with an offer to put the suggestion into optim.lr."""

from __future__ import annotations

from typing import Any, Callable

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static
from textual.worker import Worker, WorkerState

from ..format import num
from ..lr_curve import render_curve
from .lr_find_dialog import DEFAULT_SWEEP, parse_sweep

FindFn = Callable[[Any, Any, Callable[[int, float, float], None]], Any]


def _engine_find(cfg: Any, sweep: Any, progress: Callable[[int, float, float], None]) -> Any:
    from danlu.engine.loop.lr_find_run import before_run  # torch loads here, in the worker thread
    return before_run(cfg, sweep, progress)


class _Cancelled(Exception):
    pass


class EditorLrFind(ModalScreen[float | None]):
    """Returns the LR to put into optim.lr, or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="elf-cancel")]

    class Progressed(Message):
        def __init__(self, i: int, lr: float, loss: float):
            super().__init__()
            self.i, self.lr, self.loss = i, lr, loss

    class Finished(Message):
        def __init__(self, result: Any):
            super().__init__()
            self.result = result

    def __init__(self, cfg: Any, find_fn: FindFn | None = None):
        super().__init__(id="editor-lr-find")
        self.cfg = cfg
        self.find_fn = find_fn or _engine_find
        self.running = False
        self.cancelled = False
        self.suggestion: float | None = None
        self.steps = 0

    def compose(self) -> ComposeResult:
        c = self.cfg
        with Vertical(classes="dialog") as box:
            box.border_title = "LR range test (this config, a fresh model)"
            yield Static(f"Trains a fresh {c.model.name} ({c.optim.name}, batch "
                         f"{c.data.batch_size * c.train.grad_accum}, {c.run.device}) for STEPS steps while the LR "
                         "grows from START to END; nothing is written but the result's JSON.",
                         id="elf-intro", classes="hint")
            yield Input(DEFAULT_SWEEP, placeholder="START END STEPS", id="elf-sweep", compact=True)
            yield Static("", id="elf-error", classes="error")
            yield Static("", id="elf-plot")
            yield Static("", id="elf-summary")
            with Horizontal(classes="buttons"):
                yield Button("Start", variant="primary", id="elf-start", compact=True)
                yield Button("Use", variant="primary", id="elf-use", compact=True)
                yield Button("Cancel", id="elf-cancel", compact=True)

    def on_mount(self) -> None:
        for wid in ("#elf-use", "#elf-plot", "#elf-summary"):
            self.query_one(wid).display = False
        self.query_one("#elf-start", Button).focus()

    @on(Input.Submitted, "#elf-sweep")
    @on(Button.Pressed, "#elf-start")
    def start(self) -> None:
        if self.running:
            return
        try:
            start, end, steps = parse_sweep(self.query_one("#elf-sweep", Input).value)
        except ValueError as e:
            self.query_one("#elf-error", Static).update(str(e))
            return
        from danlu.engine.loop.lr_find import Sweep
        self.running, self.steps = True, steps
        self.query_one("#elf-error", Static).update("")
        self.query_one("#elf-start", Button).disabled = True
        self.query_one("#elf-intro", Static).update(f"building the model and data, then {steps} steps…")
        self._run(Sweep(start=start, end=end, steps=steps))

    @work(thread=True, exclusive=True, exit_on_error=False, group="editor-lr-find")
    def _run(self, sweep: Any) -> None:
        def progress(i: int, lr: float, loss: float) -> None:
            if self.cancelled:
                raise _Cancelled
            self.post_message(self.Progressed(i, lr, loss))  # thread-safe; widgets are the UI's
        try:
            res = self.find_fn(self.cfg, sweep, progress)
        except _Cancelled:
            return
        self.post_message(self.Finished(res))

    @on(Progressed)
    def _progressed(self, m: Progressed) -> None:
        self.query_one("#elf-intro", Static).update(f"step {m.i}/{self.steps}  lr {num(m.lr)}  loss {num(m.loss)}")

    @on(Finished)
    def _finished(self, m: Finished) -> None:
        r = m.result
        self.running = False
        w, h = self.app.size
        plot = render_curve(r.lrs, r.losses, r.smoothed, r.suggestion, r.min_over_10,
                            width=max(40, min(110, w - 10)), height=max(4, min(14, h - 19)))
        p = self.query_one("#elf-plot", Static)
        p.update("\n".join(plot))
        p.display = True
        lines = ([f"[b]suggested lr {num(r.suggestion)}[/b] (^)   min/10 {num(r.min_over_10)} (v)   "
                  f"optim.lr now {num(self.cfg.optim.lr)}"] if r.suggestion is not None
                 else ["no suggestion: the curve is too short to read (more steps, or a wider START..END)"])
        lines.append(f"rule: {r.rule}")
        if r.stopped:
            lines.append(f"stopped early: {r.stopped}")
        s = self.query_one("#elf-summary", Static)
        s.update("\n".join(lines))
        s.display = True
        for wid in ("#elf-intro", "#elf-sweep", "#elf-start"):
            self.query_one(wid).display = False
        self.query_one(".dialog").add_class("-wide")
        self.suggestion = r.suggestion
        if r.suggestion is not None:
            use = self.query_one("#elf-use", Button)
            use.label = f"Put {num(r.suggestion)} into optim.lr"
            use.display = True
            use.focus()

    @on(Worker.StateChanged)
    def _failed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "editor-lr-find" and event.state == WorkerState.ERROR:
            err = event.worker.error
            self.running = False
            self.query_one("#elf-start", Button).disabled = False
            self.query_one("#elf-intro", Static).update("")
            self.query_one("#elf-error", Static).update(f"the test failed: {err}")

    @on(Button.Pressed, "#elf-use")
    def use(self) -> None:
        if self.suggestion is not None:
            self.dismiss(float(f"{self.suggestion:.3g}"))

    @on(Button.Pressed, "#elf-cancel")
    def action_cancel(self) -> None:
        self.cancelled = True  # a sweep under way stops at its next step
        self.dismiss(None)
