"""The editor's small modals: confirm a choice, review a diff before writing, ask for a path."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static


class ConfirmDialog(ModalScreen[str | None]):
    """A question and buttons; returns the id of the button pressed, None on escape.

    The first button is focused, so put the safe choice first.
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="confirm-cancel")]

    def __init__(self, title: str, message: str, buttons: list[tuple[str, str, str]], *, id: str = "confirm-dialog"):
        super().__init__(id=id)
        self.title_text, self.message, self.buttons = title, message, buttons

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog") as box:
            box.border_title = self.title_text
            yield Static(self.message, classes="hint", markup=False)
            with Horizontal(classes="buttons"):
                for bid, label, variant in self.buttons:
                    yield Button(label, variant=variant, id=bid)

    def on_mount(self) -> None:
        self.query(Button).first().focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


def diff_text(diff: str) -> Text:
    """A unified diff coloured line by line."""
    out = Text()
    for line in diff.splitlines(keepends=True):
        style = ("green" if line.startswith("+") and not line.startswith("+++")
                 else "red" if line.startswith("-") and not line.startswith("---")
                 else "cyan" if line.startswith("@@") else "")
        out.append(line, style=style)
    return out


class DiffDialog(ModalScreen[bool]):
    """What saving changes in the file on disk; True to write it."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="diff-cancel")]

    def __init__(self, path: str, diff: str, warning: str = ""):
        super().__init__(id="diff-dialog")
        self.path, self.diff, self.warning = path, diff, warning

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog") as box:
            box.border_title = f"Save {self.path}"
            if self.warning:
                yield Static(self.warning, classes="error", markup=False)
            with VerticalScroll(id="diff-body"):
                yield Static(diff_text(self.diff) if self.diff else "a new file", id="diff-text")
            with Horizontal(classes="buttons"):
                yield Button("Write", variant="primary", id="diff-write")
                yield Button("Cancel", id="diff-cancel")

    def on_mount(self) -> None:
        self.query_one("#diff-write", Button).focus()

    @on(Button.Pressed, "#diff-write")
    def _write(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#diff-cancel")
    def action_cancel(self) -> None:
        self.dismiss(False)


class PathDialog(ModalScreen[str | None]):
    """Ask for a file path; returns it, or None on cancel."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="path-cancel")]

    def __init__(self, title: str, initial: str = "", hint: str = ""):
        super().__init__(id="path-dialog")
        self.title_text, self.initial, self.hint = title, initial, hint

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog") as box:
            box.border_title = self.title_text
            if self.hint:
                yield Static(self.hint, classes="hint", markup=False)
            yield Input(self.initial, id="path-input")
            yield Static("", classes="error", id="path-error")
            with Horizontal(classes="buttons"):
                yield Button("OK", variant="primary", id="path-ok")
                yield Button("Cancel", id="path-cancel")

    @on(Input.Submitted)
    @on(Button.Pressed, "#path-ok")
    def _ok(self) -> None:
        value = self.query_one("#path-input", Input).value.strip()
        if not value:
            self.query_one("#path-error", Static).update("give a file name")
            return
        self.dismiss(value)

    @on(Button.Pressed, "#path-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
