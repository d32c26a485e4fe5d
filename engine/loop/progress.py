"""Where a run is (Progress) and why it ends early (Stop). Imports no torch."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..control.events import StrEnum


@dataclass
class Progress:
    """The counters a checkpoint carries and a resume continues from."""

    step: int = 0                 # optimizer steps completed
    epoch: int = 0                # the current epoch, 0-based (people see epoch + 1)
    batch_in_epoch: int = 0       # micro-batches of this epoch already consumed
    best_val_loss: float = math.inf

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "best_val_loss": self.best_val_loss}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Progress:
        return cls(int(d.get("step", 0)), int(d.get("epoch", 0)), int(d.get("batch_in_epoch", 0)),
                   float(d.get("best_val_loss", math.inf)))

    def load(self, other: Progress) -> None:
        """Take another record's values in place (whoever holds this one sees them)."""
        self.step, self.epoch = other.step, other.epoch
        self.batch_in_epoch, self.best_val_loss = other.batch_in_epoch, other.best_val_loss

    def epoch_of_last_step(self) -> int:
        """The 1-based epoch the latest step belongs to, as people count (1 before any step)."""
        return self.epoch if self.batch_in_epoch == 0 and self.step > 0 else self.epoch + 1


@dataclass
class SkipStreak:
    """Optimizer steps skipped in a row for non-finite values (nan_policy skip), told as one line.

    Skipped steps do not count: every one is another try at the same step number, on new batches.
    """

    count: int = 0
    step: int = 0      # the step number they all tried to be
    first: str = ""    # what the first of them saw, e.g. "loss (nan)"

    def add(self, step: int, what: str) -> None:
        if self.count == 0:
            self.step, self.first = step, what
        self.count += 1

    def reset(self) -> None:
        self.count = 0

    def summary(self) -> str:
        """'step 5 skipped 3 times in a row, a new batch each time: non-finite loss (nan) first'."""
        if self.count == 1:
            return f"step {self.step} skipped: non-finite {self.first}"
        return (f"step {self.step} skipped {self.count} times in a row, a new batch each time: "
                f"non-finite {self.first} first")

    def fields(self) -> dict[str, Any]:
        """For events.jsonl: the numbers behind the sentence."""
        return {"skipped": self.count, "at_step": self.step}


class StopReason(StrEnum):
    """Why a run ends before its last step."""

    REQUEST = "request"        # a stop command (the quit dialog, `danlu ctl stop`)
    SIGNAL = "signal"          # SIGINT, SIGTERM, or SIGHUP with run.on_hangup: stop
    NONFINITE = "nonfinite"    # NaN/inf with nan_policy stop (or pause with nobody to resume)
    OOM = "oom"                # out of memory with nobody to restart it

    @property
    def fault(self) -> bool:
        """The run could not go on: not a success, whatever was saved."""
        return self in (StopReason.NONFINITE, StopReason.OOM)


@dataclass
class Stop:
    """A stop asked for: why, and whether to save a checkpoint on the way out."""

    reason: StopReason
    save: bool = True
    detail: str = field(default="")

    def merge(self, other: Stop) -> Stop:
        """Two stops asked for: a fault wins, and nothing is saved if either said not to."""
        first = self if self.reason.fault or not other.reason.fault else other
        return Stop(first.reason, self.save and other.save, first.detail or other.detail)
