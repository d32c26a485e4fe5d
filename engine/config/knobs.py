"""The knobs practitioners tune: every optimizer's and scheduler's own torch
arguments, with defaults, bounds and one line of help each.

One table drives config validation, `danlu check`, the editor's form and the
docs. Imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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


WD = Knob("float", 0.0, "L2 penalty added to the gradient (decoupled in AdamW). 0 disables.", min=0)
EPS = Knob("float", 1e-8, "Added to the denominator for numerical stability.", gt=0)
MAXIMIZE = Knob("bool", False, "Maximize the objective instead of minimizing it.")
BETAS = Knob("pair", (0.9, 0.999), "Decay rates of the running averages of the gradient and its square.",
             min=0, lt=1)
AMSGRAD = Knob("bool", False, "Use the AMSGrad variant (keeps the max of past squared-gradient averages).")

# name -> (torch class name, default lr, {arg: Knob})
OPTIMIZERS: dict[str, tuple[str, float, dict[str, Knob]]] = {
    "sgd": ("SGD", 0.1, {
        "momentum": Knob("float", 0.0, "Momentum factor: accumulates past gradients to speed up and smooth descent (0.9 is common).", min=0),
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
        "weight_decay": Knob("float", 0.01, "Decoupled weight decay, applied to the weights directly (0.01-0.1 is common).", min=0),
        "amsgrad": AMSGRAD,
        "maximize": MAXIMIZE,
    }),
    "rmsprop": ("RMSprop", 1e-2, {
        "alpha": Knob("float", 0.99, "Smoothing constant of the running average of squared gradients.", min=0, max=1),
        "eps": EPS,
        "weight_decay": WD,
        "momentum": Knob("float", 0.0, "Momentum factor.", min=0),
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
}

SCHEDULE_COMMON = ("name", "warmup_steps", "warmup_start_factor", "interval")


def optimizer_defaults(name: str) -> dict[str, Any]:
    return {k: v.default for k, v in OPTIMIZERS[name][2].items()}


def scheduler_defaults(name: str) -> dict[str, Any]:
    return {k: v.default for k, v in SCHEDULERS[name][2].items()}
