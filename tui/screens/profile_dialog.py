"""Ask how many steps to profile; returns a profile Command (sent by the dashboard)."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from danlu.engine.control import events as ev

from ..parsing import BadInput, parse_steps

DEFAULT_STEPS = 5


class ProfileDialog(ModalScreen[ev.Command | None]):
    """Returns a profile Command, or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="profile-cancel")]

    def __init__(self):
        super().__init__(id="profile-dialog")

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog") as box:
            box.border_title = "Profile steps"
            yield Static("torch.profiler records the next N optimizer steps, from the next step boundary, "
                         "then writes a Chrome trace into the run directory and shows the ops that took "
                         "the most time. How many steps?", classes="hint")
            yield Input(str(DEFAULT_STEPS), placeholder=f"steps, 1 to {ev.PROFILE_MAX_STEPS}",
                        id="profile-steps", compact=True)
            yield Static("", id="profile-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Profile", variant="primary", id="profile-apply", compact=True)
                yield Button("Cancel", id="profile-cancel", compact=True)

    def on_mount(self) -> None:
        field = self.query_one("#profile-steps", Input)
        field.focus()
        field.select_all()

    @on(Input.Submitted, "#profile-steps")
    @on(Button.Pressed, "#profile-apply")
    def apply(self) -> None:
        try:
            n = parse_steps(self.query_one("#profile-steps", Input).value, ev.PROFILE_MAX_STEPS)
        except BadInput as e:
            self.query_one("#profile-error", Static).update(str(e))
            self.query_one("#profile-steps", Input).focus()
            return
        self.dismiss(ev.profile(n))

    @on(Button.Pressed, "#profile-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
