"""Change the learning rate: a value or a factor, for all groups or one."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, RadioButton, RadioSet, Select, Static

from danlu.engine.control import events as ev

from ..format import num
from ..parsing import BadInput, check_lr, parse_lr

ALL = -1  # Select value meaning "every group"


class LrDialog(ModalScreen[ev.Command | None]):
    """Returns a set_lr Command, or None when cancelled. Nothing is sent from here."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="lr-cancel")]

    def __init__(self, groups: list[str], lrs: list[float]):
        super().__init__(id="lr-dialog")
        self.groups, self.lrs = groups, lrs

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog") as box:
            box.border_title = "Change learning rate"
            current = "\n".join(f"{self._group_label(i)}: [b]{num(lr)}[/b]"
                                for i, lr in enumerate(self.lrs)) or "no LR reported yet"
            yield Static(current, id="lr-current")
            yield Input(placeholder="3e-4, or a factor: x0.5  /2  *2", id="lr-input", compact=True)
            yield Static("", id="lr-error", classes="error")
            yield Static("", id="lr-preview", classes="hint")
            options = [("all groups", ALL)] + [(self._group_label(i), i) for i in range(len(self.lrs))]
            yield Select(options, allow_blank=False, value=ALL, id="lr-group", compact=True)
            with RadioSet(id="lr-mode", compact=True):
                yield RadioButton("rescale: all groups by the same ratio", value=True, id="mode-rescale")
                yield RadioButton("override: every group gets this value", id="mode-override")
            with Horizontal(classes="buttons"):
                yield Button("Apply", variant="primary", id="lr-apply", compact=True)
                yield Button("Cancel", id="lr-cancel", compact=True)

    def _group_label(self, i: int) -> str:
        return f"{i}: {self.groups[i]}" if i < len(self.groups) else f"group {i}"

    def on_mount(self) -> None:
        self.query_one("#lr-input", Input).focus()

    @property
    def group(self) -> int | None:
        g = self.query_one("#lr-group", Select).value
        return None if g == ALL or not isinstance(g, int) else g

    @property
    def mode(self) -> str:
        return "override" if self.query_one("#mode-override", RadioButton).value else "rescale"

    @on(Input.Changed, "#lr-input")
    def _preview(self) -> None:
        text = self.query_one("#lr-input", Input).value
        preview = self.query_one("#lr-preview", Static)
        try:
            change = parse_lr(text)
        except BadInput:
            preview.update("")
            return
        self.query_one("#lr-error", Static).update("")
        idx = [i for i in (range(len(self.lrs)) if self.group is None else [self.group])
               if i < len(self.lrs)]
        if len(idx) > 1 and all(self.lrs[i] == self.lrs[idx[0]] for i in idx):
            idx = idx[:1]  # every group the same: one arrow says it
        preview.update("  ".join(f"{num(self.lrs[i])} → {num(change.apply_to(self.lrs[i]))}"
                                 for i in idx))

    @on(Input.Submitted, "#lr-input")
    @on(Button.Pressed, "#lr-apply")
    def apply(self) -> None:
        try:
            change = parse_lr(self.query_one("#lr-input", Input).value)
            check_lr(self.lrs, change, None if self.group is None else [self.group])
        except BadInput as e:
            self.query_one("#lr-error", Static).update(str(e))
            self.query_one("#lr-input", Input).focus()
            return
        self.dismiss(ev.set_lr(change.value, factor=change.factor,
                               group=self.group, mode=self.mode))

    @on(Button.Pressed, "#lr-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
