"""Commands in, events out: the only vocabulary the engine and a UI share.

Plain frozen dataclasses of numbers and strings (never tensors), serialisable to
JSON dicts so the same schema can later travel over a socket. Imports no torch.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

try:
    from enum import StrEnum
except ImportError:  # Python 3.10
    class StrEnum(str, Enum):  # type: ignore[no-redef]
        """Members are their own string values (Python 3.11's StrEnum)."""

        def __str__(self) -> str:
            return str(self.value)


# --- the kinds of things, one enum each -----------------------------------------
# Members compare equal to their plain strings, so events that crossed JSON (a socket,
# events.jsonl) compare the same as those made in this process.

class State(StrEnum):
    """Where a run is; the last three are final."""

    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"
    EVALUATING = "evaluating"
    SAVING = "saving"
    STOPPING = "stopping"
    FINISHED = "finished"
    STOPPED = "stopped"
    FAILED = "failed"

    @property
    def final(self) -> bool:
        return self in FINAL_STATES


FINAL_STATES = frozenset({State.FINISHED, State.STOPPED, State.FAILED})
# States a live trainer passes through; a run left in one of them with its process gone crashed.
LIVE_STATES = frozenset(State) - FINAL_STATES


class CommandKind(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    SET_LR = "set_lr"                    # args: value | factor, group (None = all), mode (LrMode)
    SET_HPARAM = "set_hparam"            # args: name, value, group (None = all)
    SAVE_CHECKPOINT = "save_checkpoint"
    EVAL_NOW = "eval_now"
    STOP = "stop"                        # args: save (bool, default True)


class LrMode(StrEnum):
    RESCALE = "rescale"      # the schedule keeps its shape at the new level
    OVERRIDE = "override"    # the LR stays at this value until changed again


class CheckpointReason(StrEnum):
    PERIODIC = "periodic"    # checkpoint_every / the end of an epoch; rotated by keep_last
    REQUEST = "request"      # a person asked (s, the quit dialog, a signal); never rotated away
    LAST = "last"            # the end of the run
    BEST = "best"            # a new best validation loss
    FAULT = "fault"          # before pausing or stopping on a fault (out of memory, too many skipped steps)
    CRASH = "crash"          # after an exception mid-run, if the weights are finite; resumable


class AlertKind(StrEnum):
    NONFINITE = "nonfinite"
    SPIKE = "spike"
    OOM = "oom"
    ERROR = "error"
    SAVE_FAILED = "save_failed"
    BAD_INPUT = "bad_input"


# --- commands (imperative: what the user asks for) ---------------------------

_ids = itertools.count(1)


@dataclass(frozen=True)
class Command:
    kind: str
    args: dict[str, Any] = field(default_factory=dict)
    id: int = field(default_factory=lambda: next(_ids))
    # the pid of the process that sent it over the control socket; None: this process's own front end
    sender: int | None = None


def pause() -> Command:
    return Command(CommandKind.PAUSE)


def resume() -> Command:
    return Command(CommandKind.RESUME)


def set_lr(value: float | None = None, *, factor: float | None = None,
           group: int | None = None, mode: str = LrMode.RESCALE) -> Command:
    """New LR for all groups (scaled together by one ratio) or for one group."""
    return Command(CommandKind.SET_LR, {"value": value, "factor": factor, "group": group, "mode": LrMode(mode)})


def set_hparam(name: str, value: Any, group: int | None = None) -> Command:
    return Command(CommandKind.SET_HPARAM, {"name": name, "value": value, "group": group})


def save_checkpoint() -> Command:
    return Command(CommandKind.SAVE_CHECKPOINT)


def eval_now() -> Command:
    return Command(CommandKind.EVAL_NOW)


def stop(save: bool = True) -> Command:
    return Command(CommandKind.STOP, {"save": save})


# --- events (past tense facts from the engine) --------------------------------

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
    # grad norm per layer at the latest sampled step in this batch (monitor.layer_norms_every); {} if none
    layer_norms: dict[str, float] = field(default_factory=dict)
    layer_norms_step: int | None = None

    @property
    def step(self) -> int:
        return self.steps[-1]


@dataclass(frozen=True)
class EvalDone:
    step: int
    epoch: int
    val_loss: float
    val_acc: float | None      # None where the loss has no accuracy (regression)
    best_val_loss: float
    is_best: bool


@dataclass(frozen=True)
class StatusChanged:
    state: str      # a State
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
    reason: str     # a CheckpointReason


@dataclass(frozen=True)
class Alert:
    step: int
    kind: str       # an AlertKind
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
