"""Freeze or unfreeze parameters by regex (key z): what it sends, and the run's trainable count now."""

from __future__ import annotations

import re

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, RadioButton, RadioSet, Static

from danlu.engine.control import events as ev

from ..format import count
from ..parsing import BadInput, parse_number


class FreezeDialog(ModalScreen[ev.Command | None]):
    """Returns a freeze or unfreeze Command, or None when cancelled. Nothing is sent from here."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="freeze-cancel")]

    def __init__(self, trainable: int | None, total: int | None, groups: list[str]):
        super().__init__(id="freeze-dialog")
        self.trainable, self.total, self.groups = trainable, total, groups

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog") as box:
            box.border_title = "Freeze / unfreeze parameters"
            now = (f"trainable [b]{count(self.trainable)}[/b] of {count(self.total)} parameters"
                   if self.total else "parameter counts not reported yet")
            yield Static(f"{now}\ngroups: {', '.join(self.groups) or '–'}", id="freeze-current")
            yield Input(placeholder=r"regex searched in parameter names, e.g. ^features\.  layer4", id="freeze-match",
                        compact=True)
            with RadioSet(id="freeze-op", compact=True):
                yield RadioButton("freeze: requires_grad off", value=True, id="op-freeze")
                yield RadioButton("unfreeze: new ones join as a group at lr x lr_mult", id="op-unfreeze")
            yield Input(value="1", placeholder="lr_mult (unfreeze), e.g. 0.1", id="freeze-mult", compact=True)
            yield Static("", id="freeze-error", classes="error")
            yield Static("applied at the next step boundary; the answer says how many tensors changed",
                         classes="hint")
            with Horizontal(classes="buttons"):
                yield Button("Apply", variant="primary", id="freeze-apply", compact=True)
                yield Button("Cancel", id="freeze-cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#freeze-match", Input).focus()

    @property
    def unfreeze(self) -> bool:
        return self.query_one("#op-unfreeze", RadioButton).value

    @on(Input.Submitted)
    @on(Button.Pressed, "#freeze-apply")
    def apply(self) -> None:
        error = self.query_one("#freeze-error", Static)
        match = self.query_one("#freeze-match", Input).value.strip()
        try:
            if not match:
                raise BadInput("Type a regex, e.g. ^features\\. or layer4 (searched in parameter names).")
            try:
                re.compile(match)
            except re.error as e:
                raise BadInput(f"Not a valid regex: {e}.") from None
            mult = parse_number(self.query_one("#freeze-mult", Input).value or "1", "lr_mult")
            if mult <= 0:
                raise BadInput("lr_mult must be > 0, e.g. 0.1 for a pretrained backbone.")
        except BadInput as e:
            error.update(str(e))
            return
        self.dismiss(ev.unfreeze(match, lr_mult=mult) if self.unfreeze else ev.freeze(match))

    @on(Button.Pressed, "#freeze-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
