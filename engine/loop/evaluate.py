"""Evaluation: the model's loss (and accuracy, where the loss has one) over the validation set.

A function over explicit objects returning the numbers; the Trainer reports them (EvalDone,
metrics.jsonl), keeps the best, and tells the schedule (`Trainer.evaluate`).
"""

from __future__ import annotations

from typing import Iterable

import torch

from ..build.device import Placement
from ..build.fit import Fit
from ..build.loss import EvalSums


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: Iterable, fit: Fit, placement: Placement) -> tuple[float, float | None]:
    """(val_loss, val_acc) of `model` over `loader`; val_acc is None where the loss has no accuracy.
    The model is put in eval mode for it and back in the mode it was in."""
    device = placement.device
    was_training = model.training
    model.eval()
    sums = EvalSums(fit.loss, device)
    for x, y in loader:
        x = fit.inputs(x.to(device, non_blocking=True))
        y = y.to(device, non_blocking=True)
        with placement.autocast():
            sums.add(fit.output(model(x)), y)
    model.train(was_training)
    return sums.result()
