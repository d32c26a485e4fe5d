"""Per-layer gradient norms on sampled steps (`monitor.layer_norms_every`), kept on the device.

A layer is a module that owns parameters: its norm is the 2-norm of the gradients of its own
parameters (weight and bias together), as the total grad norm is the 2-norm of them all, and
like it taken before clipping. They are computed only on the steps where step % N == 0: one
foreach norm, one index_add into a tensor of one value per layer, all on the device.
StepMetrics moves that tensor to the host at the next flush in the same transfer as the losses
and grad norms, so no step waits for it, and the other steps pay nothing.
"""

from __future__ import annotations

import torch
from torch import nn


def layer_of(param_name: str) -> str:
    """'features.0.0.weight' -> 'features.0.0'; a parameter of the model itself keeps its own name."""
    return param_name.rsplit(".", 1)[0] if "." in param_name else param_name


class LayerNorms:
    """Computes one grad norm per layer of the trainable parameters `params` of `model`."""

    def __init__(self, model: nn.Module, params: list[torch.nn.Parameter]):
        names = {id(p): n for n, p in model.named_parameters()}
        self.params = list(params)
        self.names: list[str] = []          # layer names, in the model's order
        index: dict[str, int] = {}
        rows = []
        for p in self.params:
            layer = layer_of(names.get(id(p), "?"))
            if layer not in index:
                index[layer] = len(self.names)
                self.names.append(layer)
            rows.append(index[layer])
        device = self.params[0].device if self.params else torch.device("cpu")
        # made once, here, before the loop: a host-to-device copy on a training step would wait
        self._rows = torch.tensor(rows, dtype=torch.long).to(device)
        self._zero = torch.zeros((), device=device)

    def compute(self) -> torch.Tensor | None:
        """One float32 norm per layer (a device tensor), from the gradients as they are now."""
        if not self.params:
            return None
        # a parameter without a gradient this step counts as 0, so the rows never change
        grads = [p.grad if p.grad is not None else self._zero for p in self.params]
        norms = torch._foreach_norm(grads)
        sq = torch.stack([n if n.dtype == torch.float32 else n.float() for n in norms]).square_()
        out = torch.zeros(len(self.names), device=sq.device, dtype=torch.float32)
        return out.index_add_(0, self._rows.to(sq.device), sq).sqrt_()
