"""Total grad norm per step (faint band, smoothed line), the clip threshold, how often it clipped."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from ..format import num
from ..plot import PlotSpec
from ..run_state import RunState
from .chart import Chart
from .text import set_text


class GradPanel(Vertical):
    def compose(self) -> ComposeResult:
        yield Static(id="grad-text", classes="panel-text")
        yield Chart(id="grad-plot")

    def on_mount(self) -> None:
        self.border_title = "Grad norm"
        self.border_subtitle = "[$accent 45%]⣿ range[/] [$accent]━ smoothed[/] [$error]┄ clip[/]"

    def show(self, state: RunState) -> None:
        clip = "off" if state.grad_clip is None else num(state.grad_clip)
        frac = f"{100 * state.clipped / state.seen_steps:.0f}%" if state.seen_steps else "–"
        recent = (f" (last batch {100 * state.recent_clipped:.0f}%)"
                  if state.recent_clipped is not None and state.grad_clip is not None else "")
        set_text(self.query_one("#grad-text", Static),
            f"[b]{num(state.last_grad)}[/b]  clip {clip}\nclipped {frac}{recent}"
            + (f"  [$warning]fp16 skipped {state.amp_skipped}[/]" if state.amp_skipped else ""))
        hlines = [(state.grad_clip, "clip")] if state.grad_clip is not None else []
        # noisy norms fill the min..max band solid: draw it faint, the smoothed norm over it
        spec = PlotSpec(lines=[(state.grad, "grad-band"), (state.grad_ema, "grad")], hlines=hlines,
                        empty_text=state.empty_text)
        self.query_one(Chart).plot(spec, state.version)
