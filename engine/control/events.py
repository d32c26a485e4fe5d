"""Commands in, events out: the only vocabulary the engine and a UI share.

Plain frozen dataclasses of numbers and strings (never tensors), serialisable to
JSON dicts so the same schema can later travel over a socket. Imports no torch.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Any

# --- commands (imperative: what the user asks for) ---------------------------

COMMAND_KINDS = (
    "pause",
    "resume",
    "set_lr",        # args: value | factor, group (None = all), mode: rescale | override
    "set_hparam",    # args: name, value, group (None = all)
    "save_checkpoint",
    "eval_now",
    "stop",          # args: save (bool, default True)
)

LR_MODES = ("rescale", "override")

HOT_HPARAMS = (
    "weight_decay",
    "momentum",
    "betas",
    "grad_clip",
    "log_every",
    "eval_every",
    "checkpoint_every",
)

_ids = itertools.count(1)


@dataclass(frozen=True)
class Command:
    kind: str
    args: dict[str, Any] = field(default_factory=dict)
    id: int = field(default_factory=lambda: next(_ids))


def pause() -> Command:
    return Command("pause")


def resume() -> Command:
    return Command("resume")


def set_lr(value: float | None = None, *, factor: float | None = None,
           group: int | None = None, mode: str = "rescale") -> Command:
    """New LR for all groups (scaled together by one ratio) or for one group."""
    return Command("set_lr", {"value": value, "factor": factor, "group": group, "mode": mode})


def set_hparam(name: str, value: Any, group: int | None = None) -> Command:
    return Command("set_hparam", {"name": name, "value": value, "group": group})


def save_checkpoint() -> Command:
    return Command("save_checkpoint")


def eval_now() -> Command:
    return Command("eval_now")


def stop(save: bool = True) -> Command:
    return Command("stop", {"save": save})


# --- events (past tense facts from the engine) --------------------------------

STATES = ("starting", "running", "paused", "evaluating", "saving", "stopping",
          "finished", "stopped", "failed")
FINAL_STATES = ("finished", "stopped", "failed")


@dataclass(frozen=True)
class RunStarted:
    run_dir: str
    device: str
    precision: str
    total_steps: int
    steps_per_epoch: int
    epochs: int
    start_step: int
    batch_size: int
    groups: list[str]
    schedule: str
    grad_clip: float | None
    num_params: int
    config: dict[str, Any]


@dataclass(frozen=True)
class Metrics:
    """A batch of consecutive training steps, flushed from the device at once."""

    steps: list[int]
    loss: list[float]
    grad_norm: list[float]
    lr: list[float]             # first group's LR at each step
    epoch: int
    lrs: list[float]            # every group's LR at the last step
    clipped: int                # steps in this batch whose norm exceeded grad_clip
    phase: str                  # schedule phase: warmup, decay, constant, override
    steps_per_s: float
    samples_per_s: float
    elapsed: float
    eta: float | None
    total_steps: int
    memory: dict[str, float] = field(default_factory=dict)
    amp_skipped: int = 0        # fp16 steps skipped by the GradScaler so far (run total)

    @property
    def step(self) -> int:
        return self.steps[-1]


@dataclass(frozen=True)
class EvalDone:
    step: int
    epoch: int
    val_loss: float
    val_acc: float
    best_val_loss: float
    is_best: bool


@dataclass(frozen=True)
class StatusChanged:
    state: str
    step: int
    detail: str = ""


@dataclass(frozen=True)
class CommandApplied:
    command_id: int
    kind: str
    step: int
    old: Any = None
    new: Any = None
    detail: str = ""


@dataclass(frozen=True)
class CommandRejected:
    command_id: int
    kind: str
    step: int
    reason: str


@dataclass(frozen=True)
class CheckpointSaved:
    step: int
    path: str
    reason: str     # periodic, request, last, best, stop, fault


@dataclass(frozen=True)
class Alert:
    step: int
    kind: str       # nonfinite, spike, oom, error, save_failed
    message: str
    details: str = ""


@dataclass(frozen=True)
class LogLine:
    step: int
    level: str      # info, warning, error
    message: str


EVENT_TYPES = {cls.__name__: cls for cls in (
    RunStarted, Metrics, EvalDone, StatusChanged, CommandApplied,
    CommandRejected, CheckpointSaved, Alert, LogLine,
)}

Event = (RunStarted | Metrics | EvalDone | StatusChanged | CommandApplied
         | CommandRejected | CheckpointSaved | Alert | LogLine)


def to_dict(obj: Any) -> dict[str, Any]:
    """A command or event as a JSON-ready dict, tagged with its type."""
    d = dataclasses.asdict(obj)
    d["type"] = type(obj).__name__
    return d


def from_dict(d: dict[str, Any]) -> Any:
    d = dict(d)
    kind = d.pop("type")
    if kind == "Command":
        return Command(**d)
    return EVENT_TYPES[kind](**d)
