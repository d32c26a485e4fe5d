"""Parse what a person types into the LR and hyperparameter dialogs.

Pure and torch-free so it is unit tested without a terminal. Every rejection is
a `BadInput` whose message says what to type instead.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass


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


# Hot hyperparameters: name -> (kind, help shown in the dialog).
HPARAM_HELP = {
    "weight_decay": "float >= 0, e.g. 0.01",
    "momentum": "float in [0, 1], e.g. 0.9",
    "betas": "two floats in [0, 1), e.g. 0.9, 0.999",
    "grad_clip": "max grad norm > 0, or 'off' to disable",
    "log_every": "whole number of steps >= 1",
    "eval_every": "whole number of steps >= 1",
    "checkpoint_every": "whole number of steps >= 1",
}

_OFF = ("off", "none", "no", "disable", "disabled")


def parse_hparam(name: str, text: str):
    """The typed value for hot hyperparameter `name`, validated like the config is."""
    if name not in HPARAM_HELP:
        raise BadInput(f"'{name}' cannot be changed mid-run; it needs a restart.")
    s = text.strip()
    if name == "weight_decay":
        x = parse_number(s, name)
        if x < 0:
            raise BadInput(f"weight_decay must be >= 0, got {x:g}.")
        return x
    if name == "momentum":
        x = parse_number(s, name)
        if not 0 <= x <= 1:
            raise BadInput(f"momentum must be in [0, 1], got {x:g}.")
        return x
    if name == "betas":
        parts = [p for p in re.split(r"[\s,()\[\]]+", s) if p]
        if len(parts) != 2:
            raise BadInput("betas takes two numbers, e.g. 0.9, 0.999.")
        pair = tuple(parse_number(p, "beta") for p in parts)
        if not all(0 <= b < 1 for b in pair):
            raise BadInput(f"each beta must be in [0, 1), got {pair[0]:g}, {pair[1]:g}.")
        return pair
    if name == "grad_clip":
        if s.lower() in _OFF:
            return None
        x = parse_number(s, name)
        if x <= 0:
            raise BadInput(f"grad_clip must be > 0, got {x:g}; type 'off' to disable clipping.")
        return x
    # the intervals
    x = parse_number(s, name)
    if x != int(x) or x < 1:
        raise BadInput(f"{name} must be a whole number >= 1, got {s}.")
    return int(x)
