"""Total grad norm per step (faint band, smoothed line), the clip threshold, how often it clipped;
with monitor.layer_norms_every, the layers with the largest grad norms beside the chart."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from ..format import num
from ..plot import PlotSpec
from ..run_state import RunState
from .chart import Chart
from .text import set_text

TOP_LAYERS = 5
LAYERS_WIDTH = 23   # the list's text columns (dashboard.tcss #grad-layers: these + 1 of padding)


def layers_text(state: RunState, k: int = TOP_LAYERS, width: int = LAYERS_WIDTH) -> str:
    """One 'name  norm' row per layer, largest first; names cut at the left to fit `width`."""
    name_w = max(6, width - 9)
    rows = []
    for name, value in state.top_layers(k):
        short = name if len(name) <= name_w else "…" + name[-(name_w - 1):]
        rows.append(f"{short:<{name_w}} {num(value):>8}")
    return "\n".join(rows)


class GradPanel(Horizontal):
    """The chart on the left; the top layers on the right once there are any (below the first text
    line, in place of the chart, in the compact layout: dashboard.tcss)."""

    def compose(self) -> ComposeResult:
        with Vertical(id="grad-main"):
            yield Static(id="grad-text", classes="panel-text")
            yield Chart(id="grad-plot")
        with Vertical(id="grad-side"):
            yield Static(id="grad-layers-title")
            yield Static(id="grad-layers")

    LEGEND = "[$accent 45%]⣿ range[/] [$accent]━ smoothed[/] [$error]┄ clip[/]"

    def on_mount(self) -> None:
        self.border_title = "Grad norm"
        self.border_subtitle = self.LEGEND

    def show(self, state: RunState) -> None:
        clip = "off" if state.grad_clip is None else num(state.grad_clip)
        frac = f"{100 * state.clipped / state.seen_steps:.0f}%" if state.seen_steps else "–"
        recent = (f" (last batch {100 * state.recent_clipped:.0f}%)"
                  if state.recent_clipped is not None and state.grad_clip is not None else "")
        set_text(self.query_one("#grad-text", Static),
            f"[b]{num(state.last_grad)}[/b]  clip {clip}\nclipped {frac}{recent}"
            + (f"  [$warning]fp16 skipped {state.amp_skipped}[/]" if state.amp_skipped else ""))
        if state.layer_norms:
            if not self.has_class("-layers"):
                self.add_class("-layers")  # once: the list takes its columns from the chart
            listing = self.query_one("#grad-layers", Static)
            title = f"top layers @{state.layer_norms_step}"
            set_text(self.query_one("#grad-layers-title", Static), f"[b]{title}[/b]")
            # compact: no chart, so no legend; the list's title (its own row is hidden) goes there
            subtitle = title if self.screen.has_class("-compact") else self.LEGEND
            if self.border_subtitle != subtitle:
                self.border_subtitle = subtitle
            set_text(listing, layers_text(state, width=max(LAYERS_WIDTH, listing.size.width)))
        hlines = [(state.grad_clip, "clip")] if state.grad_clip is not None else []
        # noisy norms fill the min..max band solid: draw it faint, the smoothed norm over it
        spec = PlotSpec(lines=[(state.grad, "grad-band"), (state.grad_ema, "grad")], hlines=hlines,
                        empty_text=state.empty_text)
        self.query_one(Chart).plot(spec, state.version)
