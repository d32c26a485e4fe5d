"""Change a hot hyperparameter (weight decay, momentum, betas, clip, intervals)."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Select, Static

from danlu.engine.control import events as ev

from ..parsing import HPARAM_HELP, BadInput, parse_hparam

ALL = -1
PER_GROUP = ("weight_decay", "momentum", "betas")  # optimizer settings that live per group
# What a value looks like: the input shows it until you type (the help line says the rules).
PLACEHOLDERS = {
    "weight_decay": "0.01",
    "momentum": "0.9",
    "betas": "0.9, 0.999",
    "grad_clip": "1.0 or off",
    "log_every": "10",
    "eval_every": "500",
    "checkpoint_every": "1000",
}


class HparamDialog(ModalScreen[ev.Command | None]):
    """Returns a set_hparam Command, or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="hparam-cancel")]

    def __init__(self, groups: list[str], current: dict[str, object]):
        super().__init__(id="hparam-dialog")
        self.groups, self.current = groups, current

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog") as box:
            box.border_title = "Change a hyperparameter"
            yield Select([(n, n) for n in ev.HOT_HPARAMS], allow_blank=False,
                         value=ev.HOT_HPARAMS[0], id="hp-name", compact=True)
            yield Static("", id="hp-help", classes="hint")
            # a bordered input, unlike the dialog's compact selects: it is where you type
            yield Input(id="hp-input", placeholder=PLACEHOLDERS.get(ev.HOT_HPARAMS[0], ""))
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
        self.query_one("#hp-help", Static).update(f"{HPARAM_HELP[name]}{now}")
        self.query_one("#hp-input", Input).placeholder = PLACEHOLDERS.get(name, "")
        self.query_one("#hp-group", Select).display = name in PER_GROUP and len(self.groups) > 1
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
        group = g if name in PER_GROUP and isinstance(g, int) and g != ALL else None
        self.dismiss(ev.set_hparam(name, value, group))

    @on(Button.Pressed, "#hp-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
