"""Change a hot hyperparameter (weight decay, momentum, betas, clip, intervals)."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Select, Static

from danlu.engine.config.hot import HOT, HPARAMS
from danlu.engine.control import events as ev

from ..parsing import BadInput, hparam_help, parse_hparam

ALL = -1


class HparamDialog(ModalScreen[ev.Command | None]):
    """Returns a set_hparam Command, or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="hparam-cancel")]

    def __init__(self, groups: list[str], current: dict[str, object]):
        super().__init__(id="hparam-dialog")
        self.groups, self.current = groups, current

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog") as box:
            box.border_title = "Change a hyperparameter"
            yield Select([(n, n) for n in HPARAMS], allow_blank=False,
                         value=HPARAMS[0], id="hp-name", compact=True)
            yield Static("", id="hp-help", classes="hint")
            # a bordered input, unlike the dialog's compact selects: it is where you type
            yield Input(id="hp-input", placeholder=HOT[HPARAMS[0]].example)
            yield Static("", id="hp-error", classes="error")
            groups = [("all groups", ALL)] + [(f"{i}: {g}", i) for i, g in enumerate(self.groups)]
            yield Select(groups, allow_blank=False, value=ALL, id="hp-group", compact=True)
            with Horizontal(classes="buttons"):
                yield Button("Apply", variant="primary", id="hp-apply", compact=True)
                yield Button("Cancel", id="hp-cancel", compact=True)

    def on_mount(self) -> None:
        self._describe()
        self.query_one("#hp-input", Input).focus()

    @property
    def hparam_name(self) -> str:
        return str(self.query_one("#hp-name", Select).value)

    @on(Select.Changed, "#hp-name")
    def _describe(self) -> None:
        name = self.hparam_name
        cur = self.current.get(name)
        now = f"  (now: {cur})" if cur is not None else ""
        self.query_one("#hp-help", Static).update(f"{hparam_help(name)}{now}")
        self.query_one("#hp-input", Input).placeholder = HOT[name].example
        self.query_one("#hp-group", Select).display = HOT[name].per_group and len(self.groups) > 1
        self.query_one("#hp-error", Static).update("")

    @on(Input.Submitted, "#hp-input")
    @on(Button.Pressed, "#hp-apply")
    def apply(self) -> None:
        name = self.hparam_name
        try:
            value = parse_hparam(name, self.query_one("#hp-input", Input).value)
        except BadInput as e:
            self.query_one("#hp-error", Static).update(str(e))
            return
        g = self.query_one("#hp-group", Select).value
        group = g if HOT[name].per_group and isinstance(g, int) and g != ALL else None
        self.dismiss(ev.set_hparam(name, value, group))

    @on(Button.Pressed, "#hp-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
