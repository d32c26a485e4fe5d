"""Ask how to leave: save and quit (the default, on Enter), quit without saving, or stay; once the
run has ended, only quit or stay."""

from __future__ import annotations

from typing import Literal

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

QuitChoice = Literal["save", "nosave", "detach"] | None


class QuitDialog(ModalScreen[QuitChoice]):
    """Returns "save", "nosave", or None (cancel); attached to a run in another process
    (`detach=True`): "detach" (the default), "save" (stop the run, saving first), or None."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="quit-cancel"),
        Binding("down,j", "app.focus_next", "Next", show=False, id="quit-next"),
        Binding("up,k", "app.focus_previous", "Previous", show=False, id="quit-prev"),
    ]

    def __init__(self, running: bool = True, detach: bool = False, nonfinite: str | None = None):
        super().__init__(id="quit-dialog")
        self.running = running
        self.detach = detach
        self.nonfinite = nonfinite  # paused on NaN/inf: a save may have nothing sound to write

    def compose(self) -> ComposeResult:
        if self.detach:
            yield from self._compose_attached()
            return
        with Vertical(classes="dialog") as box:
            box.border_title = "Quit danlu"
            msg = ("Training is still running. It stops at the next step boundary."
                   if self.running else "The run has ended; its checkpoints are in the run directory.")
            if self.running and self.nonfinite:
                msg = (f"Paused on non-finite values ({self.nonfinite}). A checkpoint is written only if the "
                       "weights are still finite; if not, the last good checkpoint stays the run's state.")
            yield Static(msg, classes="hint")
            # once the run has ended the engine has already written its last checkpoint
            label = "Save checkpoint and quit" if self.running else "Quit"
            if self.running and self.nonfinite:
                label = "Stop and quit (save if the weights are finite)"
            yield Button(label, variant="primary", id="quit-save")
            if self.running:  # once it has ended there is nothing left to save or not
                yield Button("Quit without saving", variant="error", id="quit-nosave")
            yield Button("Cancel", id="quit-cancel")

    def _compose_attached(self) -> ComposeResult:
        with Vertical(classes="dialog") as box:
            box.border_title = "Leave the run"
            msg = ("The run goes on after you detach; danlu attach brings this view back."
                   if self.running else "The run has ended; its checkpoints are in the run directory.")
            yield Static(msg, classes="hint")
            yield Button("Detach" if self.running else "Quit", variant="primary", id="quit-detach")
            if self.running:
                yield Button("Stop the run (save a checkpoint first)", variant="error", id="quit-save")
            yield Button("Cancel", id="quit-cancel")

    def on_mount(self) -> None:
        self.query_one("#quit-detach" if self.detach else "#quit-save", Button).focus()

    @on(Button.Pressed, "#quit-detach")
    def _chose_detach(self) -> None:  # not _detach: Textual's own name for taking a node out
        self.dismiss("detach")

    @on(Button.Pressed, "#quit-save")
    def _save(self) -> None:
        self.dismiss("save")

    @on(Button.Pressed, "#quit-nosave")
    def _nosave(self) -> None:
        self.dismiss("nosave")

    @on(Button.Pressed, "#quit-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
