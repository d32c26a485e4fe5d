"""The last evaluation and the best so far."""

from __future__ import annotations

from textual.widgets import Static

from ..format import num
from ..run_state import RunState
from .text import set_text


def _pct(x: float | None) -> str:
    return "–" if x is None else (f"{100 * x:.1f}%" if 0 <= x <= 1 else num(x))


class ValPanel(Static):
    def on_mount(self) -> None:
        self.border_title = "Validation"

    def show(self, state: RunState) -> None:
        v = state.val
        if v is None:
            set_text(self, "[dim]not evaluated yet\ne: evaluate now[/]")
            return
        star = " [$success]★ best[/]" if v.is_best else ""
        set_text(self, f"loss [b]{num(v.val_loss)}[/b]  best {num(state.best_val_loss)}\n"
                    f"acc  [b]{_pct(v.val_acc)}[/b]  best {_pct(state.best_val_acc)}\n"
                    f"at step {v.step}, epoch {v.epoch}{star}")
