"""train.overfit_batches: the same first N batches every epoch, and what it means when the loss
does not fall on them.

A model that cannot learn a handful of batches by heart has a bug upstream of any tuning: the
LR, the init, or labels that do not belong to their inputs. `OverfitWatch` reads the losses each
flush moves to the host (no extra sync) and says so once, with the usual causes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# Steps (after any warmup) by which a sound setup has at least halved the loss on a few batches;
# the default small CNN on shapes gets below a tenth in about 100 (docs/techniques.md).
CHECK_AFTER = 100
FALL = 0.5           # the loss must be below this fraction of where it started
HEAD = 5             # steps averaged for the starting loss
TAIL = 10            # steps averaged for the loss now


def describe(batches: int, batch_size: int) -> str:
    return (f"overfit mode (train.overfit_batches={batches}): training and validating on the same "
            f"{batches} batch{'es' if batches != 1 else ''} of {batch_size}, unshuffled; the loss should go near 0")


@dataclass
class OverfitWatch:
    """Judges the loss once, CHECK_AFTER steps after `start` (the end of warmup)."""

    start: int
    check_after: int = CHECK_AFTER
    head: list[float] = field(default_factory=list)
    tail: list[float] = field(default_factory=list)
    done: bool = False

    def observe(self, steps: list[int], losses: list[float]) -> str | None:
        """A message when the loss has not fallen enough by the check, else None (said at most once)."""
        if self.done:
            return None
        for s, loss in zip(steps, losses):
            if not math.isfinite(loss):
                continue
            if len(self.head) < HEAD:
                self.head.append(loss)
            self.tail = (self.tail + [loss])[-TAIL:]
            if s >= self.start + self.check_after:
                self.done = True
                return self._verdict(s)
        return None

    def _verdict(self, step: int) -> str | None:
        first = sum(self.head) / len(self.head)
        now = sum(self.tail) / len(self.tail)
        if now <= FALL * first:
            return None
        spread = max(self.tail) - min(self.tail)
        if now > first:
            why = ("it rose: the LR is most likely too high (try optim.lr / 10, the LR finder, or a warmup)")
        elif spread > 0.5 * now:
            why = ("it jumps about: the LR is likely too high for this model (try optim.lr / 3)")
        else:
            why = ("it creeps down: the LR may be too low (try optim.lr x 10), or part of the model gets no "
                   "gradient (frozen or detached layers, a weight decay or dropout too strong)")
        return (f"overfit check: after {step} steps on the same batches the loss is {now:.3g} (it started at "
                f"{first:.3g}); {why}. Other usual causes: labels that do not match their inputs (a shuffled "
                "target list, a wrong target transform), an init that saturates (model.init=auto), or a loss "
                "that does not fit the output (logits vs probabilities).")
