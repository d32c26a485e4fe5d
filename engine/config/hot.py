"""Hot settings: what may change mid-run, one row each. Imports no torch.

Each row names the setting, its config key, its Knob (type and bounds, the same object the
config validates with), whether it lives per param group, and who applies it:

- `schedule`: the LRSchedule (set_lr),
- `optimizer`: the optimizer's param groups (build/optim.py::set_hparam),
- `trainer`: a value the loop reads between steps (HotValues below).

Config validation, command-line overrides, the dialogs, the command handlers and the
checkpoint all read this table. A new hot setting is one row here plus its apply function.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .knobs import BETAS, MOMENTUM, OFF_WORDS, WD, Knob, check_value
from .schema import FIELDS, OPTIM_FIELDS


@dataclass(frozen=True)
class Hot:
    """One setting a person may change while the run goes on."""

    name: str          # what commands and dialogs call it
    path: str          # its config key
    knob: Knob         # type and bounds
    per_group: bool    # can be set for one param group
    applied_by: str    # schedule, optimizer or trainer
    example: str       # what the dialog's input shows as a placeholder

    @property
    def section(self) -> str:
        return self.path.split(".", 1)[0]

    @property
    def key(self) -> str:
        return self.path.split(".", 1)[1]


HOT: dict[str, Hot] = {h.name: h for h in (
    Hot("lr", "optim.lr", OPTIM_FIELDS["lr"], True, "schedule", "3e-4 or x0.5"),
    Hot("weight_decay", "optim.weight_decay", WD, True, "optimizer", "0.01"),
    Hot("momentum", "optim.momentum", MOMENTUM, True, "optimizer", "0.9"),
    Hot("betas", "optim.betas", BETAS, True, "optimizer", "0.9, 0.999"),
    Hot("grad_clip", "train.grad_clip", FIELDS["train"]["grad_clip"], False, "trainer", "1.0 or off"),
    Hot("log_every", "monitor.log_every", FIELDS["monitor"]["log_every"], False, "trainer", "10"),
    Hot("eval_every", "train.eval_every", FIELDS["train"]["eval_every"], False, "trainer", "500"),
    Hot("checkpoint_every", "train.checkpoint_every", FIELDS["train"]["checkpoint_every"], False, "trainer",
        "1000"),
)}

# set_hparam's settings: every hot setting but the LR, which has its own command (set_lr).
HPARAMS: tuple[str, ...] = tuple(n for n in HOT if n != "lr")
TRAINER_VALUES: tuple[str, ...] = tuple(n for n, h in HOT.items() if h.applied_by == "trainer")
BY_PATH: dict[str, Hot] = {h.path: h for h in HOT.values()}


def suggest(name: str) -> str | None:
    """The hot setting a mistyped or other-tool name means (`wd`, `learning_rate`, `weight_decy`), or None."""
    import difflib
    from .schema import ALIASES
    leaf = name.rsplit(".", 1)[-1].lower()
    leaf = ALIASES.get(leaf, leaf)
    if leaf in HOT and leaf != name:
        return leaf
    near = difflib.get_close_matches(leaf, list(HOT), n=1, cutoff=0.75)
    return near[0] if near else None


def check(name: str, value: Any) -> Any:
    """`value` typed and within the setting's bounds, or ValueError saying what is allowed."""
    h = HOT.get(name)
    if h is None:
        near = suggest(name)
        if near is not None:
            raise ValueError(f"no hot setting {name!r}; did you mean {near}? Hot settings: {', '.join(HOT)}")
        raise ValueError(f"{name!r} cannot change mid-run; hot settings are: {', '.join(HOT)}. "
                         "Change others in the config and restart from a checkpoint.")
    if value is None and not h.knob.optional:
        raise ValueError(f"{name} must be {h.knob.bounds_text()}")
    problems: list[str] = []
    out = check_value(name, value, h.knob, problems)
    if problems:
        raise ValueError(f"{problems[0]} ({name} takes {h.knob.bounds_text()})")
    return tuple(out) if h.knob.type == "pair" else out


def parse_text(name: str, text: str) -> Any:
    """What a person typed for a hot setting (a dialog, `danlu ctl set`), checked: the value or ValueError."""
    h = HOT.get(name)
    if h is None:
        return check(name, None)  # raises with the list of hot settings
    s = text.strip()
    if not s:
        raise ValueError(f"type a value for {name}, e.g. {h.example}")
    if h.knob.off and s.lower() in OFF_WORDS:
        return None
    if h.knob.type == "pair":
        parts = [p for p in re.split(r"[\s,()\[\]]+", s) if p]
        if len(parts) != 2:
            raise ValueError(f"{name} takes two numbers, e.g. {h.example}")
        return check(name, [_number(p, name) for p in parts])
    return check(name, _number(s, name))


def _number(text: str, name: str) -> float:
    try:
        return float(text.replace("_", ""))
    except ValueError:
        raise ValueError(f"{text!r} is not a number; {name} takes {HOT[name].knob.bounds_text()}") from None


def config_value(config: dict[str, Any], name: str) -> Any:
    """A hot setting's value in a resolved config dict (Config.to_dict(), or the dict RunStarted carries)."""
    h = HOT[name]
    return (config.get(h.section) or {}).get(h.key)


class HotValues(dict):
    """The trainer-applied hot settings of a run, by name: what the loop reads between steps."""

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> HotValues:
        return cls({n: config_value(config, n) for n in TRAINER_VALUES})

    def restore(self, saved: dict[str, Any] | None) -> None:
        """Values from a checkpoint's `hot` entry (settings changed mid-run outlive a resume)."""
        for n, v in (saved or {}).items():
            if n in TRAINER_VALUES:
                self[n] = v
