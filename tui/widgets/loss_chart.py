"""Train loss per step, its EMA, val loss at each eval, and intervention markers."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical

from ..plot import PlotSpec
from ..run_state import RunState
from .chart import Chart


LEGEND = ("[$primary]⣿ train[/] [$warning]━ ema[/] [$error]● val[/]"
          " [$secondary]┊ lr[/] [$warning]┊ pause[/] [$success]┊ ckpt[/]")
# named only once a freeze or unfreeze has happened: most runs have none
FREEZE_LEGEND = LEGEND + " [b $primary-lighten-2]┊ freeze[/]"


class LossChart(Vertical):
    """The big chart. `show(state, log=...)` redraws when the state changed."""

    _title = ""  # the border title shown now
    _freezes = False  # the legend names the freeze marker

    def compose(self) -> ComposeResult:
        yield Chart(id="loss-plot")

    def on_mount(self) -> None:
        self.border_title = self._title = "Loss"
        self.border_subtitle = LEGEND

    def show(self, state: RunState, log: bool = False) -> None:
        spec = PlotSpec(
            lines=[(state.loss, "train"), (state.ema, "ema")],
            points=[(s, v, "val", "●") for s, v in state.val_points],
            vmarks=[(s, "mark-" + k) for s, k in state.markers],
            log=log,
            empty_text=state.empty_text,
        )
        title = "Loss · log" if log else "Loss"
        if state.loss.skipped:
            title += f" · {state.loss.skipped} non-finite"
        # A border title is markup, parsed at each set, and setting it repaints the whole panel:
        # only when it changed, not at every chart frame.
        if title != self._title:
            self.border_title = self._title = title
        if not self._freezes and any(k == "freeze" for _, k in state.markers):
            self._freezes = True
            self.border_subtitle = FREEZE_LEGEND
        self.query_one(Chart).plot(spec, (state.version, log))
