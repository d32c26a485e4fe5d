"""The LR over the whole run (warmup included) for the config being edited.

`engine.schedule.preview` needs torch, so it runs in a thread worker and is
imported there; the result comes back as a message. The UI never waits for it.
"""

from __future__ import annotations

from typing import Callable

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from danlu.engine.config.plan import estimate
from danlu.engine.config.schema import Config

from ..format import num
from ..plot import PlotSpec
from ..series import Series
from .chart import Chart

PreviewFn = Callable[[object, float, int, int], list]


def _engine_preview(schedule, base_lr: float, steps_per_epoch: int, total_steps: int) -> list:
    from danlu.engine.build.schedule import preview  # torch loads here, in the worker thread
    return preview(schedule, base_lr, steps_per_epoch, total_steps)


class LrPreview(Vertical):
    """Give it a valid Config with `show(cfg)`; it draws the schedule when computed."""

    class Computed(Message):
        """A preview finished (for the config identified by key)."""

        def __init__(self, key: object, lrs: list, caption: str):
            super().__init__()
            self.key, self.lrs, self.caption = key, lrs, caption

    def __init__(self, preview_fn: PreviewFn | None = None, *, id: str | None = None):
        super().__init__(id=id)
        self.preview_fn = preview_fn or _engine_preview
        self.key: object = None       # what is being computed or shown
        self._caption = ""
        self.shown_key: object = None  # what the chart shows

    def compose(self) -> ComposeResult:
        yield Static("", id="lr-caption")
        yield Chart(id="lr-chart")

    def on_mount(self) -> None:
        self.border_title = "LR schedule"

    @property
    def busy(self) -> bool:
        return self.key != self.shown_key

    def show(self, cfg: Config | None) -> None:
        """Preview `cfg`'s schedule; None (an invalid config) keeps the last curve, dimmed."""
        if cfg is None:
            self.set_class(True, "-stale")
            self.query_one("#lr-caption", Static).update("fix the config to update the preview")
            return
        self.set_class(False, "-stale")
        plan = estimate(cfg)
        spe, total, exact = plan.steps_per_epoch, plan.total_steps, plan.exact
        sched = cfg.schedule
        key = (sched.name, sched.warmup_steps, sched.warmup_start_factor, sched.interval,
               repr(sorted(sched.args.items())), cfg.optim.lr, spe, total)
        if key == self.key:
            if not self.busy:
                self.query_one("#lr-caption", Static).update(self._caption)
            return
        self.key = key
        self._caption = ""
        length = (f"{total} steps ({spe}/epoch)" if exact
                  else f"{plan.epochs} epochs of ~{spe} steps (dataset size unknown)")
        caption = f"{sched.name}" + (f", warmup {sched.warmup_steps}" if sched.warmup_steps else "") \
            + f" · {length}"
        self.query_one("#lr-caption", Static).update(caption + " · computing…")
        self._compute(key, sched, cfg.optim.lr, spe, total, caption)

    @work(thread=True, exclusive=True, exit_on_error=False, group="lr-preview")
    def _compute(self, key, sched, lr, spe, total, caption) -> None:
        lrs = self.preview_fn(sched, lr, spe, total)
        self.post_message(self.Computed(key, list(lrs), caption))  # thread-safe; never touch widgets here

    @on(Computed)
    def _computed(self, event: Computed) -> None:
        if event.key != self.key:
            return  # a newer config is on its way
        series = Series()
        for step, lr in enumerate(event.lrs, start=1):
            series.append(step, float(lr))
        lo, hi = (min(event.lrs), max(event.lrs)) if event.lrs else (0.0, 0.0)
        self._caption = f"{event.caption} · peak {num(hi)}, lowest {num(lo)}"
        self.query_one("#lr-caption", Static).update(self._caption)
        self.query_one(Chart).plot(PlotSpec(lines=[(series, "lr")]), event.key)
        self.shown_key = event.key

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "lr-preview" and event.state == WorkerState.ERROR:
            err = event.worker.error
            self.shown_key = self.key
            self.query_one("#lr-caption", Static).update(f"preview failed: {type(err).__name__}: {err}")
