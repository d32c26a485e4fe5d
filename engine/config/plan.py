"""Step planning: how many optimizer steps a run takes. Imports no torch.

One function for the trainer, the editor's estimate and the LR preview, so the three
always agree. `train.max_steps`, when set, wins over `train.epochs` (as in Lightning and
the Hugging Face Trainer): the run takes exactly that many steps, passing over the data
as many times as it needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# How a training set that is a stream (an IterableDataset) is read (docs/config.md shows this).
STREAM_RULE = ("A dataset that is a torch.utils.data.IterableDataset is read in its own order (danlu does not "
               "shuffle it) and started again when it ends. Without a length (__len__) the run needs "
               "train.max_steps and counts as one epoch, so set train.eval_every and train.checkpoint_every. "
               "It cannot be split: data.val_fraction is ignored, and a builder that returns (train, val) gives "
               "the validation set. Each DataLoader worker runs the whole stream unless the dataset divides it "
               "with torch.utils.data.get_worker_info(), so other streams get one worker. A resume reads the "
               "stream again from its beginning and skips the batches already trained on.")

# Training-set sizes of the built-in datasets whose size is known without loading them.
KNOWN_SIZES = {"mnist": 60000, "fashion_mnist": 60000, "cifar10": 50000}
SHAPES_DEFAULT_SIZE = 4000
# When the dataset's size cannot be known without loading it, estimates use epochs of this many steps.
PLACEHOLDER_STEPS_PER_EPOCH = 100


@dataclass(frozen=True)
class StepPlan:
    """The length of a run in optimizer steps, and how it falls into epochs."""

    micro_per_epoch: int    # micro-batches that fill whole optimizer steps in one pass
    steps_per_epoch: int    # optimizer steps in one pass over the training set
    total_steps: int        # the run's length: max_steps if set, else epochs x steps_per_epoch
    epochs: int             # passes the run makes (the last one may end part way)
    exact: bool = True      # False when the data's size was a placeholder (estimates only)


def val_size(n: int, val_fraction: float) -> int:
    """Items the validation split takes from a dataset of n (at least one, never all)."""
    if val_fraction <= 0 or n <= 1:
        return 0
    return min(n - 1, max(1, round(n * val_fraction)))


def plan_steps(train_size: int | None, batch_size: int, grad_accum: int, epochs: int,
               max_steps: int | None) -> StepPlan:
    """The plan for a training set of `train_size` items (after any validation split).

    None is a stream without a length: the run is max_steps long, and counts as one epoch.
    """
    if train_size is None:
        if not max_steps:
            raise ValueError("train.max_steps: the training set is an IterableDataset without a length, so "
                             "train.epochs cannot say how long the run is. Set train.max_steps=N (optimizer steps).")
        return StepPlan(int(max_steps) * grad_accum, int(max_steps), int(max_steps), 1)
    micro = train_size // batch_size
    spe = micro // grad_accum
    if spe < 1:
        raise ValueError(f"data.batch_size: {batch_size} x train.grad_accum {grad_accum} needs more samples "
                         f"than the training set has ({train_size}). Lower one of them.")
    total = int(max_steps) if max_steps else epochs * spe
    return StepPlan(spe * grad_accum, spe, total, math.ceil(total / spe))


def continued(plan: StepPlan, step: int, epoch: int, batch_in_epoch: int, epochs: int,
              max_steps: int | None) -> StepPlan:
    """The plan of a run that goes on from a checkpoint (resume, warm start) at `step`, `epoch` epochs
    done and `batch_in_epoch` micro-batches into the next: its total counts the steps already done.

    With max_steps, that is the total. Otherwise the rest of the current epoch and the remaining
    epochs at this plan's steps per epoch (after a batch-size change that is another number than
    before). Raises ValueError when the config asks for less than the run has done.
    """
    spe, accum = plan.steps_per_epoch, max(1, plan.micro_per_epoch // plan.steps_per_epoch)
    into = min(batch_in_epoch // accum, spe)
    if max_steps:
        total = int(max_steps)
        if total < step:
            raise ValueError(f"train.max_steps={total} is behind the run, which is at step {step}: a run that goes "
                             f"on can only add steps. Give train.max_steps={step} or more.")
    else:
        total = step + (epochs - epoch) * spe - into
        if total < step:
            raise ValueError(f"train.epochs={epochs}: the run has done {epoch} epochs"
                             f"{f' and {into} steps of the next' if into else ''} (step {step}). Give "
                             f"train.epochs={epoch + (1 if into else 0)} or more, or train.max_steps.")
    return StepPlan(plan.micro_per_epoch, spe, total, epoch + math.ceil((total - step + into) / spe))


def known_train_size(data: Any) -> int | None:
    """The training-set size of a data config without loading it (after the val split), if knowable."""
    if data.name == "shapes":
        n = int((data.args or {}).get("size", SHAPES_DEFAULT_SIZE))
    elif data.name in KNOWN_SIZES:
        n = KNOWN_SIZES[data.name]
    else:
        return None
    return n - val_size(n, float(data.val_fraction or 0.0))


def estimate(cfg: Any) -> StepPlan:
    """The plan for a Config without building its data: exact where the size is known."""
    n = known_train_size(cfg.data)
    t = cfg.train
    if n is not None:
        try:
            return plan_steps(n, cfg.data.batch_size, t.grad_accum, t.epochs, t.max_steps)
        except ValueError:
            pass
    spe = PLACEHOLDER_STEPS_PER_EPOCH
    total = int(t.max_steps) if t.max_steps else t.epochs * spe
    return StepPlan(spe * t.grad_accum, spe, total, math.ceil(total / spe), exact=False)
