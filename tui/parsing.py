"""Parse what a person types into the LR and hyperparameter dialogs.

Pure and torch-free so it is unit tested without a terminal. Every rejection is
a `BadInput` whose message says what to type instead.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from danlu.engine.config import hot


class BadInput(ValueError):
    """Input the dialog refuses; the message is shown inside the dialog."""


@dataclass(frozen=True)
class LrChange:
    """Either an absolute LR (`value`) or a multiplier of the current one (`factor`)."""

    value: float | None = None
    factor: float | None = None

    def apply_to(self, current: float) -> float:
        return self.value if self.value is not None else current * self.factor


_FACTOR = re.compile(r"^\s*([x×*/])\s*(.+?)\s*$", re.IGNORECASE)


def parse_number(text: str, what: str = "value") -> float:
    """A finite float from `text`, or BadInput naming `what`."""
    s = text.strip().replace("_", "")
    if not s:
        raise BadInput(f"Type a {what}, e.g. 3e-4.")
    try:
        x = float(s)
    except ValueError:
        raise BadInput(f"'{text.strip()}' is not a number. Type e.g. 3e-4.") from None
    if math.isnan(x) or math.isinf(x):
        raise BadInput(f"The {what} must be a finite number, got {s}.")
    return x


def parse_lr(text: str) -> LrChange:
    """`3e-4` sets the LR; `x0.5`, `*2`, `/2` scale it. Zero, negative, NaN, inf are refused."""
    m = _FACTOR.match(text)
    if m:
        op, rest = m.groups()
        x = parse_number(rest, "factor")
        if x <= 0:
            raise BadInput(f"The factor must be > 0, got {x:g}.")
        return LrChange(factor=(1.0 / x) if op == "/" else x)
    x = parse_number(text, "learning rate")
    if x <= 0:
        raise BadInput(f"The learning rate must be > 0, got {x:g}. "
                       "To stop updates, pause instead (space).")
    return LrChange(value=x)


def hparam_help(name: str) -> str:
    """What the dialog says a hot setting takes: its bounds, from the engine's table."""
    return hot.HOT[name].knob.bounds_text()


def parse_hparam(name: str, text: str):
    """The typed value for hot setting `name`, checked against the same bounds the engine applies."""
    try:
        return hot.parse_text(name, text)
    except ValueError as e:
        raise BadInput(str(e)) from None


def check_lr(lrs: list[float], change: LrChange, groups: list[int] | None = None) -> None:
    """Refuse an LR change the engine would refuse: any group's new LR past the config's bound."""
    top = hot.HOT["lr"].knob.max
    if change.value is not None and change.value > top:
        raise BadInput(f"the largest allowed LR is {top:g}; {change.value:g} is most likely a typo.")
    for i, lr in enumerate(lrs):
        if groups is not None and i not in groups:
            continue
        new = change.apply_to(lr)
        if new > top:
            who = f" for group {i}" if len(lrs) > 1 else ""
            raise BadInput(f"that makes the LR{who} {new:g}; the largest allowed is {top:g} "
                           "(a larger value is most likely a typo).")


def parse_steps(text: str, top: int) -> int:
    """A whole number of steps from 1 to `top` (the profile dialog)."""
    s = text.strip().replace("_", "")
    if not s:
        raise BadInput(f"Type how many steps to profile, 1 to {top}.")
    try:
        n = int(s)
    except ValueError:
        raise BadInput(f"'{text.strip()}' is not a whole number. Type e.g. 5.") from None
    if not 1 <= n <= top:
        raise BadInput(f"Profile 1 to {top} steps (a longer trace opens in no viewer); got {n}.")
    return n
