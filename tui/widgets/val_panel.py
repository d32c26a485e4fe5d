"""The last evaluation and the best so far."""

from __future__ import annotations

from textual.widgets import Static

from ..format import num
from ..run_state import RunState
from .text import set_text


def _pct(x: float | None) -> str:
    return "–" if x is None else (f"{100 * x:.1f}%" if 0 <= x <= 1 else num(x))


def _loss_name(state: RunState) -> str:
    cfg = state.run.config if state.run else {}
    name = str((cfg.get("train") or {}).get("loss") or "loss")
    return name.rsplit(":", 1)[-1]  # the user's module:callable, by its callable


class ValPanel(Static):
    def on_mount(self) -> None:
        self.border_title = "Validation"

    def show(self, state: RunState) -> None:
        v = state.val
        if v is None:
            set_text(self, "[dim]not evaluated yet\ne: evaluate now[/]")
            return
        star = " [$success]★ best[/]" if v.is_best else ""
        # accuracy only where the loss has one: a regression run's second line names its loss instead
        second = (f"acc  [b]{_pct(v.val_acc)}[/b]  best {_pct(state.best_val_acc)}" if v.val_acc is not None
                  else f"[dim]{_loss_name(state)}: no accuracy[/]")
        set_text(self, f"loss [b]{num(v.val_loss)}[/b]  best {num(state.best_val_loss)}\n"
                    f"{second}\n"
                    f"at step {v.step}, epoch {v.epoch}{star}")
