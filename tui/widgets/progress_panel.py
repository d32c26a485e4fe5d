"""Epoch and step with a bar, throughput, elapsed and ETA (all from events, not the clock)."""

from __future__ import annotations

from textual.widgets import Static

from ..format import count, duration, rate
from ..run_state import RunState
from .text import set_text


def bar(fraction: float, width: int) -> str:
    """A text progress bar of `width` cells, with half-cell resolution."""
    fraction = min(max(fraction, 0.0), 1.0)
    halves = int(fraction * width * 2)
    full, half = divmod(halves, 2)
    s = "━" * full + ("╸" if half else "")
    return f"[$accent]{s}[/][$foreground-muted]{'━' * (width - len(s))}[/]"


class ProgressPanel(Static):
    _title = _subtitle = ""

    def on_mount(self) -> None:
        self.border_title = self._title = "Progress"

    def _borders(self, state: RunState) -> None:
        """The title says overfit mode plainly; the subtitle, trainable of all parameters."""
        n = state.overfit_batches
        # the mode first: at 80 columns the end of the title is what gets cut
        title = f"[b $warning]OVERFIT {n} batch{'es' if n > 1 else ''}[/] · Progress" if n else "Progress"
        sub = ""
        if state.total_params:
            t, a = state.trainable_params, state.total_params
            sub = f"params {count(a)}" if t == a else f"trainable {count(t)}/{count(a)}"
        # border titles are markup parsed at each set, repainting the panel: only when changed
        if title != self._title:
            self.border_title = self._title = title
        if sub != self._subtitle:
            self.border_subtitle = self._subtitle = sub

    def show(self, state: RunState) -> None:
        self._state = state
        self._borders(state)
        total = state.total_steps
        epochs = state.run.epochs if state.run else None
        shown = max(state.epoch, 1)  # events count epochs from 1, as people do
        epoch = f"epoch {shown}" + (f"/{epochs}" if epochs else "")
        step = f"step {state.step}" + (f"/{total}" if total else "")
        frac = state.step / total if total else 0.0
        width = max(self.content_size.width - 6, 4)
        lines = [
            f"{epoch}  {step}",
            f"{bar(frac, width)} {100 * frac:3.0f}%",
            f"{rate(state.steps_per_s)} step/s  {rate(state.samples_per_s)} samples/s",
            f"elapsed {duration(state.elapsed)}  ETA {duration(state.eta)}",
        ]
        set_text(self, "\n".join(lines))

    def on_resize(self) -> None:
        # the bar's width follows the panel's; redraw from the last state we were shown
        state = getattr(self, "_state", None)
        if state is not None:
            self.show(state)
