"""The knobs practitioners tune: every optimizer's and scheduler's own torch
arguments, with defaults, bounds and one line of help each.

One table drives config validation, `danlu check`, the editor's form and the
docs. Imports no torch.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any

# Words that mean "off" for a knob whose empty value disables it (grad_clip: off). YAML reads a
# bare `off` or `no` as false, so false counts too.
OFF_WORDS = ("off", "none", "no", "false", "disable", "disabled")


@dataclass(frozen=True)
class Knob:
    """One argument: its type, default, bounds and a line of help."""

    type: str                  # float, int, bool, str, floats (list), ints (list), pair (2 floats)
    default: Any
    help: str
    min: float | None = None   # inclusive lower bound
    gt: float | None = None    # exclusive lower bound
    max: float | None = None   # inclusive upper bound
    lt: float | None = None    # exclusive upper bound
    choices: tuple | None = None
    optional: bool = False     # None allowed (means "derive it", e.g. T_max from the run length)
    off: bool = False          # None means "off", and the words in OFF_WORDS (and false) say it

    def bounds_text(self) -> str:
        """The allowed values in words: 'a number > 0', 'a whole number >= 1', 'two numbers in [0, 1)'."""
        what = {"int": "a whole number", "ints": "whole numbers", "float": "a number", "floats": "numbers",
                "pair": "two numbers"}.get(self.type, self.type)
        lo = f"[{self.min:g}" if self.min is not None else (f"({self.gt:g}" if self.gt is not None else None)
        hi = f"{self.max:g}]" if self.max is not None else (f"{self.lt:g})" if self.lt is not None else None)
        if lo and hi:
            text = f"{what} in {lo}, {hi}"
        elif lo:
            text = f"{what} {'>=' if lo[0] == '[' else '>'} {lo[1:]}"
        elif hi:
            text = f"{what} {'<=' if hi[-1] == ']' else '<'} {hi[:-1]}"
        else:
            text = what
        return text + (", or off" if self.off else "")


WD = Knob("float", 0.0, "L2 penalty added to the gradient (decoupled in AdamW). 0 disables.", min=0, max=1)
EPS = Knob("float", 1e-8, "Added to the denominator for numerical stability.", gt=0)
MAXIMIZE = Knob("bool", False, "Maximize the objective instead of minimizing it.")
BETAS = Knob("pair", (0.9, 0.999), "Decay rates of the running averages of the gradient and its square.",
             min=0, lt=1)
# One momentum rule for every optimizer that has one (and for beta1 where it stands in):
# 1 or more never converges, so it is refused everywhere, in the config and mid-run alike.
MOMENTUM = Knob("float", 0.0, "Momentum factor: accumulates past gradients to speed up and smooth descent "
                "(0.9 is common).", min=0, lt=1)
AMSGRAD = Knob("bool", False, "Use the AMSGrad variant (keeps the max of past squared-gradient averages).")

# name -> (torch class name, default lr, {arg: Knob})
OPTIMIZERS: dict[str, tuple[str, float, dict[str, Knob]]] = {
    "sgd": ("SGD", 0.1, {
        "momentum": MOMENTUM,
        "dampening": Knob("float", 0.0, "Fraction of the new gradient damped out of the momentum buffer (ignored on the first step).", min=0, max=1),
        "nesterov": Knob("bool", False, "Nesterov momentum: look ahead along the momentum before taking the gradient (needs momentum > 0, dampening 0)."),
        "weight_decay": WD,
        "maximize": MAXIMIZE,
    }),
    "adam": ("Adam", 1e-3, {
        "betas": BETAS,
        "eps": EPS,
        "weight_decay": WD,
        "amsgrad": AMSGRAD,
        "maximize": MAXIMIZE,
    }),
    "adamw": ("AdamW", 1e-3, {
        "betas": BETAS,
        "eps": EPS,
        "weight_decay": Knob("float", 0.01, "Decoupled weight decay, applied to the weights directly (0.01-0.1 is common).", min=0, max=1),
        "amsgrad": AMSGRAD,
        "maximize": MAXIMIZE,
    }),
    "rmsprop": ("RMSprop", 1e-2, {
        "alpha": Knob("float", 0.99, "Smoothing constant of the running average of squared gradients.", min=0, max=1),
        "eps": EPS,
        "weight_decay": WD,
        "momentum": MOMENTUM,
        "centered": Knob("bool", False, "Normalise by the estimated variance of the gradient instead of its raw second moment."),
        "maximize": MAXIMIZE,
    }),
    "adagrad": ("Adagrad", 1e-2, {
        "lr_decay": Knob("float", 0.0, "LR decay per step: lr / (1 + (t-1) * lr_decay).", min=0),
        "weight_decay": WD,
        "initial_accumulator_value": Knob("float", 0.0, "Starting value of the sum of squared gradients.", min=0),
        "eps": Knob("float", 1e-10, "Added to the denominator for numerical stability.", gt=0),
        "maximize": MAXIMIZE,
    }),
    "adadelta": ("Adadelta", 1.0, {
        "rho": Knob("float", 0.9, "Decay rate of the running averages of squared gradients and updates.", min=0, max=1),
        "eps": Knob("float", 1e-6, "Added to the denominator for numerical stability.", gt=0),
        "weight_decay": WD,
        "maximize": MAXIMIZE,
    }),
}

# Keys of the optim section that are not a torch argument of the optimizer.
OPTIM_COMMON = ("name", "lr", "no_decay_bias_norm", "param_groups")

INTERVALS = ("step", "epoch")

# name -> (torch class name, default interval, {arg: Knob})
SCHEDULERS: dict[str, tuple[str | None, str, dict[str, Knob]]] = {
    "none": (None, "step", {}),
    "step": ("StepLR", "epoch", {
        "step_size": Knob("int", 1, "Decay the LR every step_size intervals (epochs by default).", min=1),
        "gamma": Knob("float", 0.1, "Multiply the LR by gamma at each decay.", gt=0),
    }),
    "multistep": ("MultiStepLR", "epoch", {
        "milestones": Knob("ints", [2, 4], "Intervals (epochs by default) at which the LR is multiplied by gamma.", min=1),
        "gamma": Knob("float", 0.1, "Multiply the LR by gamma at each milestone.", gt=0),
    }),
    "exponential": ("ExponentialLR", "epoch", {
        "gamma": Knob("float", 0.9, "Multiply the LR by gamma every interval (epoch by default).", gt=0),
    }),
    "cosine": ("CosineAnnealingLR", "step", {
        "T_max": Knob("int", None, "Length of the cosine half-period in intervals; empty = the rest of the run after warmup.", min=1, optional=True),
        "eta_min": Knob("float", 0.0, "The lowest LR the cosine reaches.", min=0),
    }),
    "cosine_restarts": ("CosineAnnealingWarmRestarts", "epoch", {
        "T_0": Knob("int", 1, "Length of the first cosine cycle in intervals (epochs by default; fractional epochs step within a cycle).", min=1),
        "T_mult": Knob("int", 1, "Each cycle is T_mult times longer than the previous one.", min=1),
        "eta_min": Knob("float", 0.0, "The lowest LR each cycle reaches before restarting.", min=0),
    }),
    "plateau": ("ReduceLROnPlateau", "eval", {
        "mode": Knob("str", "min", "min: reduce when val_loss stops falling; max: when it stops rising.", choices=("min", "max")),
        "factor": Knob("float", 0.1, "Multiply the LR by factor when the metric plateaus.", gt=0, lt=1),
        "patience": Knob("int", 2, "Evaluations without improvement before reducing the LR.", min=0),
        "threshold": Knob("float", 1e-4, "Smallest change that counts as an improvement.", min=0),
        "threshold_mode": Knob("str", "rel", "rel: threshold relative to the best; abs: absolute.", choices=("rel", "abs")),
        "cooldown": Knob("int", 0, "Evaluations to wait after a reduction before watching again.", min=0),
        "min_lr": Knob("float", 0.0, "The LR is never reduced below this.", min=0),
        "eps": Knob("float", 1e-8, "Reductions smaller than eps are skipped.", min=0),
    }),
    "onecycle": ("OneCycleLR", "step", {
        "max_lr": Knob("float", None, "Peak LR of the cycle; empty = optim.lr.", gt=0, optional=True),
        "total_steps": Knob("int", None, "Length of the cycle in steps; empty = the rest of the run after warmup.", min=1, optional=True),
        "pct_start": Knob("float", 0.3, "Fraction of the cycle spent increasing the LR.", gt=0, lt=1),
        "anneal_strategy": Knob("str", "cos", "Shape of the anneal: cos or linear.", choices=("cos", "linear")),
        "cycle_momentum": Knob("bool", True, "Cycle momentum (or beta1) inversely to the LR."),
        "base_momentum": Knob("float", 0.85, "Lowest momentum of the cycle.", min=0, max=1),
        "max_momentum": Knob("float", 0.95, "Highest momentum of the cycle.", min=0, max=1),
        "div_factor": Knob("float", 25.0, "Starting LR = max_lr / div_factor.", gt=0),
        "final_div_factor": Knob("float", 1e4, "Final LR = starting LR / final_div_factor.", gt=0),
        "three_phase": Knob("bool", False, "Add a third phase that anneals below the starting LR."),
    }),
    "lambda": ("LambdaLR", "step", {
        "fn": Knob("str", None, "Your function of the step (or of the epoch, with interval: epoch), counted from 0 "
                   "after warmup, giving the factor on optim.lr: package.module:callable or path/file.py:callable.",
                   optional=True),
    }),
}

SCHEDULE_COMMON = ("name", "warmup_steps", "warmup_start_factor", "interval")


KINDS = {"optim": (OPTIMIZERS, OPTIM_COMMON), "schedule": (SCHEDULERS, SCHEDULE_COMMON)}

# The built-in models' and datasets' own arguments (model.args, data.args) and their defaults.
# The builders (build/models.py, build/data.py) check args against these; the kind-switch rule
# below reads them. Anything else (torchvision, the user's own module:callable) is judged by its
# own builder, never by this table.
BUILTIN_MODEL_ARGS: dict[str, dict[str, Any]] = {
    "small_cnn": {"width": 32, "dropout": 0.1},
    "mlp": {"hidden": [256, 256], "dropout": 0.1},
}
BUILTIN_DATA_ARGS: dict[str, tuple[str, ...]] = {
    "shapes": ("size", "image_size", "num_classes", "noise", "channels", "seed"),
    "image_folder": ("image_size",),
    "mnist": (), "fashion_mnist": (), "cifar10": (),
}
_ARG_TABLES = {"model": BUILTIN_MODEL_ARGS, "data": BUILTIN_DATA_ARGS}


def foreign_keys(section: str, keys: list[str], name: str) -> list[str]:
    """The keys a switch of `section` (optim or schedule) to kind `name` drops: those only other kinds take.

    The one kind-switch rule, used by command-line overrides and by the editor's form alike.
    """
    table, common = KINDS[section]
    own = table[name][-1] if name in table else {}
    return [k for k in keys if k not in common and k not in own
            and any(k in entry[-1] for entry in table.values())]


def switch_drops(section: str, old: str, new: str, base_keys: list[str]) -> dict[str, str]:
    """On a switch of `section`'s kind from `old` to `new`: the keys of the base config to drop, with why.

    The one rule for command-line overrides: only keys that came from the base config are ever
    dropped (what a person wrote on the command line reaches the builder, which says clearly if it
    does not fit). optim and schedule keys are checked against the knob tables (keys only other
    kinds take); model.args and data.args against the built-ins' tables, and when the new kind is
    not a built-in (torchvision, the user's own code) its arguments cannot be known here, so the
    old kind's args all go.
    """
    if section in KINDS:
        return {k: f"it came from the base config and {new} does not take it"
                for k in foreign_keys(section, base_keys, new)}
    own = _ARG_TABLES[section].get(new)
    if own is None:
        return {k: f"it came from the base config, for {old}; {new} is not a built-in, so its args "
                   f"are only what you give as {section}.args.KEY=VALUE" for k in base_keys}
    return {k: f"it came from the base config and {new} does not take it" for k in base_keys if k not in own}


def optimizer_defaults(name: str) -> dict[str, Any]:
    return {k: v.default for k, v in OPTIMIZERS[name][2].items()}


def scheduler_defaults(name: str) -> dict[str, Any]:
    return {k: v.default for k, v in SCHEDULERS[name][2].items()}


# --- checking a value against its knob ---------------------------------------------

def fmt(v: Any) -> str:
    return repr(v) if isinstance(v, str) else str(v)


# Knob types checked by isinstance alone: (Python type, how the message names it).
_PLAIN_TYPES = {
    "bool": (bool, "true or false"),
    "str": (str, "a string"),
    "dict": (dict, "a mapping (key: value)"),
    "list": (list, "a list"),
}


def check_value(path: str, v: Any, knob: Knob, problems: list[str]) -> Any:
    """The value coerced to the knob's type, or the problem appended and None returned."""
    if knob.off and (v is False or (isinstance(v, str) and v.strip().lower() in OFF_WORDS)):
        return None
    if v is None:
        if knob.optional:
            return None
        problems.append(f"{path}: must be set ({knob.help})")
        return None
    t = knob.type
    if t in _PLAIN_TYPES:
        kind, words = _PLAIN_TYPES[t]
        if not isinstance(v, kind):
            problems.append(f"{path}: must be {words}, got {fmt(v)}")
            return None
        if knob.choices and v not in knob.choices:
            hint = difflib.get_close_matches(v, knob.choices, n=1)
            extra = f" Did you mean {hint[0]!r}?" if hint else ""
            problems.append(f"{path}: must be one of {', '.join(knob.choices)}; got {v!r}.{extra}")
            return None
        return kind(v) if kind in (dict, list) else v  # containers copied, so configs never share them
    if t in ("int", "float"):
        return _check_number(path, v, knob, problems)
    if t in ("floats", "ints", "pair"):
        if not isinstance(v, (list, tuple)):
            problems.append(f"{path}: must be a list like [0.9, 0.999], got {fmt(v)}")
            return None
        if t == "pair" and len(v) != 2:
            problems.append(f"{path}: must be a pair like [0.9, 0.999], got {len(v)} values")
            return None
        item = Knob("int" if t == "ints" else "float", None, knob.help, min=knob.min, gt=knob.gt,
                    max=knob.max, lt=knob.lt)
        out = [check_value(f"{path}[{i}]", x, item, problems) for i, x in enumerate(v)]
        if any(x is None for x in out):
            return None
        if t == "ints" and out != sorted(set(out)):
            problems.append(f"{path}: must be increasing without repeats, got {out}")
            return None
        return out
    raise AssertionError(f"unknown knob type {t}")


def _check_number(path: str, v: Any, knob: Knob, problems: list[str]) -> Any:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        if isinstance(v, str):
            try:  # YAML reads 1e-3 (no dot) as a string; accept what is plainly a number
                v = float(v) if knob.type == "float" else int(v)
            except ValueError:
                problems.append(f"{path}: must be a number, got {fmt(v)}")
                return None
        else:
            problems.append(f"{path}: must be a number, got {fmt(v)}")
            return None
    if knob.type == "int":
        if isinstance(v, float):
            if not v.is_integer():
                problems.append(f"{path}: must be a whole number, got {v}")
                return None
            v = int(v)
    else:
        v = float(v)
        if not math.isfinite(v):
            problems.append(f"{path}: must be a finite number, got {v}")
            return None
    if knob.gt is not None and not v > knob.gt:
        problems.append(f"{path}: must be > {knob.gt:g}, got {v:g}")
        return None
    if knob.min is not None and v < knob.min:
        problems.append(f"{path}: must be >= {knob.min:g}, got {v:g}")
        return None
    if knob.lt is not None and not v < knob.lt:
        problems.append(f"{path}: must be < {knob.lt:g}, got {v:g}")
        return None
    if knob.max is not None and v > knob.max:
        problems.append(f"{path}: must be <= {knob.max:g}, got {v:g}")
        return None
    return v
