"""One optimizer step's arithmetic: forward and backward per micro-batch, then unscale, clip, update.

Functions over explicit objects (the model, its Fit, the Placement, the optimizer and the fp16
GradScaler); the Trainer calls them in order and keeps the accounting (step counts, the schedule,
the metrics). Nothing here reads a value back to the host: the loss and the grad norm stay on the
device until the metrics flush (tests/engine/test_sync_audit.py holds the loop to that). The only
syncs here are the GradScaler's own, in fp16; nan_policy skip adds one per step (faults.py).
"""

from __future__ import annotations

import torch

from ..build.device import Placement
from ..build.fit import Fit
from .layer_norms import LayerNorms


def forward_backward(model: torch.nn.Module, fit: Fit, placement: Placement, scaler: torch.amp.GradScaler | None,
                     x: torch.Tensor, y: torch.Tensor, accum: int, move_to: torch.device | None) -> torch.Tensor:
    """One micro-batch: moved to `move_to` (None: it is where it belongs), forward under autocast,
    the loss divided by `accum`, backward (through the scaler in fp16). Returns the loss."""
    if move_to is not None:  # on the CPU .to() is a no-op that still costs a dispatch
        x = x.to(move_to, non_blocking=True)
        y = y.to(move_to, non_blocking=True)
    x = fit.inputs(x)
    with placement.autocast():
        loss = fit.loss(fit.output(model(x)), y)
        if accum > 1:  # scaled before backward: accumulation averages (a /1 costs a kernel and a grad node)
            loss = loss / accum
    if scaler is not None:
        scaler.scale(loss).backward()
    else:
        loss.backward()
    return loss


def total_norm(params: list[torch.Tensor]) -> torch.Tensor:
    """The 2-norm of all the grads together, on the device (a zero when no parameter has a grad)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    get_total_norm = getattr(torch.nn.utils, "get_total_norm", None)
    if get_total_norm is not None:
        return get_total_norm(grads, 2.0, foreach=None)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


def clip_grads(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None, params: list[torch.nn.Parameter],
         grad_clip: float | None, layer_norms: LayerNorms | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The grads made ready for the update: unscaled (fp16), then clipped to `grad_clip` (None: only
    measured). Returns the total norm before clipping, and the per-layer norms (measured before
    clipping too) when `layer_norms` is given (a sampled step); both stay on the device."""
    if scaler is not None:
        scaler.unscale_(optimizer)
    layers = layer_norms.compute() if layer_norms is not None else None
    if grad_clip is not None:
        norm = torch.nn.utils.clip_grad_norm_(params, grad_clip, foreach=None)
    else:
        norm = total_norm(params)
    return norm, layers


def update_weights(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None) -> bool:
    """optimizer.step (through the scaler in fp16), then the grads dropped. True when the GradScaler
    skipped the step for an overflow (the weights did not move)."""
    skipped = False
    if scaler is not None:
        before = scaler.get_scale()
        scaler.step(optimizer)  # syncs by itself to check for inf/NaN
        scaler.update()
        skipped = scaler.get_scale() < before  # the scale only drops when a step was skipped
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return skipped
