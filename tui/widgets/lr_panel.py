"""Current LR of every param group, the schedule and its phase, and the LR curve."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from ..plot import PlotSpec
from ..run_state import RunState
from .chart import Chart
from .text import set_text


class LrPanel(Vertical):
    def compose(self) -> ComposeResult:
        yield Static(id="lr-text", classes="panel-text")
        yield Chart(id="lr-plot")

    def on_mount(self) -> None:
        self.border_title = "Learning rate"

    def show(self, state: RunState) -> None:
        schedule = state.run.schedule if state.run else "–"
        groups = state.groups
        lrs = state.lrs
        if len(lrs) > 1 and all(lr == lrs[0] for lr in lrs):
            parts = [f"[b]{lrs[0]:.2e}[/b] all {len(lrs)} groups"]  # names would only repeat it
        else:
            parts = [f"[b]{lr:.2e}[/b] {groups[i] if i < len(groups) else i}"
                     for i, lr in enumerate(lrs)] or ["–"]
        phase = f" · {state.phase}" if state.phase else ""
        set_text(self.query_one("#lr-text", Static), f"{'  '.join(parts)}\n{schedule}{phase}")
        spec = PlotSpec(lines=[(state.lr, "lr")],
                        vmarks=[(s, "mark-set_lr") for s, k in state.markers if k == "set_lr"],
                        empty_text=state.empty_text)
        self.query_one(Chart).plot(spec, state.version)
