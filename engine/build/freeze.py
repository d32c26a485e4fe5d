"""Freezing and unfreezing parameters by regex: at the start (model.freeze), on a schedule
(model.unfreeze) and live (the freeze command), keeping the optimizer and the LR schedule right.

A frozen parameter has requires_grad False and no gradient, so every torch optimizer skips it
(its state, if it had one, is kept for when it thaws). Parameters that were never in the
optimizer (frozen from the start) join it when unfrozen as a new param group at
optim.lr * lr_mult, added through LRSchedule.add_groups so the schedule shapes it like the rest.
Every change is recorded in `Transfer.ops`; a checkpoint carries them, and a resume replays them
before loading the optimizer, so the same groups exist again in the same order.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import UserError


def _named(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    return list(model.named_parameters())


def matching(model: torch.nn.Module, pattern: str, where: str) -> list[tuple[str, torch.nn.Parameter]]:
    """The parameters whose names `pattern` searches; ValueError naming close names when none."""
    try:
        rx = re.compile(pattern)
    except (re.error, TypeError) as e:
        raise ValueError(f"{where}: {pattern!r} is not a valid regex ({e})") from None
    named = _named(model)
    hits = [(n, p) for n, p in named if rx.search(n)]
    if not hits:
        names = [n for n, _ in named]
        close = difflib.get_close_matches(pattern, names, n=3, cutoff=0.4)
        # module prefixes (features.0, layer4, fc) are what people usually mean to write
        prefixes = list(dict.fromkeys(n.rsplit(".", 1)[0] for n in names))
        close += [p for p in difflib.get_close_matches(pattern.strip("^$.*\\"), prefixes, n=3, cutoff=0.4)
                  if p not in close]
        sample = ", ".join(close[:4]) if close else ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        raise ValueError(f"{where}: '{pattern}' matches no parameter; "
                         f"{'close names' if close else 'names look like'}: {sample}")
    return hits


def count(params: list[torch.nn.Parameter]) -> int:
    return sum(p.numel() for p in params)


@dataclass
class Changed:
    """What one freeze or unfreeze changed."""

    op: str                     # freeze or unfreeze
    match: str
    tensors: int = 0
    params: int = 0
    new_groups: list[str] = field(default_factory=list)
    rejoined: int = 0           # tensors that thawed back into the group they had before

    def describe(self) -> str:
        verb = "froze" if self.op == "freeze" else "unfroze"
        text = f"{verb} {self.tensors} tensors ({self.params:,} parameters) matching '{self.match}'"
        if self.new_groups:
            text += f"; new param group{'s' if len(self.new_groups) > 1 else ''} {', '.join(self.new_groups)}"
        if self.rejoined:
            text += f"; {self.rejoined} rejoined their old group"
        return text


def freeze_at_start(model: torch.nn.Module, patterns: list[str]) -> Changed | None:
    """model.freeze: before the optimizer is built, so frozen parameters stay out of it."""
    if not patterns:
        return None
    hit: dict[int, torch.nn.Parameter] = {}
    for i, pat in enumerate(patterns):
        try:
            for _, p in matching(model, pat, f"model.freeze[{i}]"):
                hit[id(p)] = p
        except ValueError as e:
            raise UserError(f"{e}. Fix the regex in model.freeze (names come from model.named_parameters()).") \
                from None
    for p in hit.values():
        p.requires_grad_(False)
    if not any(p.requires_grad for p in model.parameters()):
        raise UserError(f"model.freeze {patterns} freezes every parameter, so nothing would train; "
                        "leave the head out, e.g. model.freeze=['^(?!fc\\.)'] freezes all but fc")
    return Changed("freeze", " | ".join(patterns), len(hit), count(list(hit.values())))


def check_unfreeze(model: torch.nn.Module, entries: list[dict[str, Any]]) -> None:
    """model.unfreeze, at the start: each regex must find parameters frozen by then (not at its epoch)."""
    for i, u in enumerate(entries or []):
        where = f"model.unfreeze[{i}].match"
        try:
            hits = matching(model, u["match"], where)
        except ValueError as e:
            raise UserError(f"{e}. Fix the regex (names come from model.named_parameters()).") from None
        if all(p.requires_grad for _, p in hits):
            raise UserError(f"{where}: '{u['match']}' matches only trainable parameters ({hits[0][0]}, ...), so "
                            "there is nothing for it to unfreeze; freeze them first with model.freeze")


class Transfer:
    """A run's freezes and unfreezes after its start, applied to the model, optimizer and schedule."""

    def __init__(self, model: torch.nn.Module, no_decay_bias_norm: bool = True):
        self.model = model
        self.no_decay_bias_norm = no_decay_bias_norm
        # what was done, in order: {op, match, lr_mult, step}; a checkpoint holds it, a resume replays it
        self.ops: list[dict[str, Any]] = []

    def trainable(self) -> tuple[int, int]:
        """(trainable, total) parameter counts."""
        ps = list(self.model.parameters())
        return count([p for p in ps if p.requires_grad]), count(ps)

    def freeze(self, optimizer: torch.optim.Optimizer, match: str, step: int = 0) -> Changed:
        hits = [p for _, p in matching(self.model, match, "freeze")]
        change = [p for p in hits if p.requires_grad]
        if not change:
            raise ValueError(f"freeze: the {len(hits)} tensors matching {match!r} are already frozen")
        gone = {id(p) for p in change}
        if not any(p.requires_grad and id(p) not in gone for p in self.model.parameters()):
            raise ValueError(f"freeze: {match!r} would freeze every trainable parameter, so nothing would train")
        for p in change:
            p.requires_grad_(False)
            p.grad = None  # optimizers skip parameters without a gradient: no update, no weight decay
        self.ops.append({"op": "freeze", "match": match, "step": step})
        return Changed("freeze", match, len(change), count(change))

    def unfreeze(self, optimizer: torch.optim.Optimizer, schedule: Any, match: str, lr_mult: float = 1.0,
                 step: int = 0) -> Changed:
        lr_mult = float(lr_mult)
        if not (lr_mult > 0):
            raise ValueError(f"unfreeze: lr_mult must be > 0, got {lr_mult}")
        hits = [p for _, p in matching(self.model, match, "unfreeze")]
        change = [p for p in hits if not p.requires_grad]
        if not change:
            raise ValueError(f"unfreeze: the {len(hits)} tensors matching {match!r} are already trainable")
        known = {id(p) for g in optimizer.param_groups for p in g["params"]}
        new = [p for p in change if id(p) not in known]
        for p in change:
            p.requires_grad_(True)
        names = []
        if new:
            groups = []
            for no_decay in (False, True):
                params = [p for p in new if (self.no_decay_bias_norm and p.ndim <= 1) == no_decay]
                if params:
                    groups.append({"params": params, "name": f"unfreeze:{match}" + ("/no_decay" if no_decay else ""),
                                   "lr_mult": lr_mult, "wd_pinned": no_decay,
                                   **({"weight_decay": 0.0} if no_decay else {})})
            schedule.add_groups(groups)
            names = [g["name"] for g in groups]
        self.ops.append({"op": "unfreeze", "match": match, "lr_mult": lr_mult, "step": step})
        return Changed("unfreeze", match, len(change), count(change), names, len(change) - len(new))

    def replay(self, optimizer: torch.optim.Optimizer, schedule: Any, ops: list[dict[str, Any]]) -> None:
        """A resume: the checkpoint's ops again, so its optimizer state finds the same groups."""
        for op in ops or []:
            if op.get("op") == "freeze":
                self.freeze(optimizer, op["match"], op.get("step", 0))
            else:
                self.unfreeze(optimizer, schedule, op["match"], op.get("lr_mult", 1.0), op.get("step", 0))


def init_new_state(optimizer: torch.optim.Optimizer, params: list[torch.nn.Parameter]) -> None:
    """Adagrad fills its state in __init__ (older torch reads it without checking): do the same here."""
    if not isinstance(optimizer, torch.optim.Adagrad):
        return
    group = optimizer.param_groups[-1]
    init = float(group.get("initial_accumulator_value", 0.0))
    for p in params:
        state = optimizer.state[p]
        if not state:
            state["step"] = torch.tensor(0.0)
            state["sum"] = torch.full_like(p, init, memory_format=torch.preserve_format)
