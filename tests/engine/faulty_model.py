"""A model for fault tests: behaves, then misbehaves at a chosen training forward pass.

Used through the config as model.name="<this file>:build" with model.args.
"""

import os

import torch
from torch import nn


class _InfGrad(torch.autograd.Function):
    """Identity forward; an infinite gradient backward (an fp16 overflow, simulated)."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * float("inf")


class Faulty(nn.Module):
    def __init__(self, num_classes: int, fault: str, at: int, once: bool, until: int | None = None):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))
        self.fault, self.at, self.once = fault, at, once
        # the last faulty call: `at` alone when once, else `until` (None: for good)
        self.until = at if once else until
        self.calls = 0

    def forward(self, x):
        out = self.net(x)
        if not self.training:
            return out
        self.calls += 1
        if os.environ.get("DANLU_TEST_FAULT_FIXED"):
            return out  # stands in for the user fixing their code before a resume
        if self.at <= self.calls and (self.until is None or self.calls <= self.until):
            if self.fault == "nan":
                return out * float("nan")
            if self.fault == "infgrad":
                return _InfGrad.apply(out)
            if self.fault == "spike":
                return out * 1000.0
            if self.fault == "oom":
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
            if self.fault == "crash":
                raise ValueError("bug in the user's model (injected)")
        return out


def build(num_classes: int, input_shape=None, fault: str = "none", at: int = 10**9, once: bool = True,
          until: int | None = None, **_):
    m = Faulty(num_classes, fault, at, once, until)
    m.eval()
    m(torch.zeros(1, *input_shape))  # materialise the lazy layer without counting a training call
    return m.train()
