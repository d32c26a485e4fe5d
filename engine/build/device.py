"""Where and in what precision the run computes."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from ..errors import UserError


_NO_AUTOCAST = contextlib.nullcontext()  # reusable; one less object per step in fp32


@dataclass(frozen=True)
class Placement:
    device: torch.device
    precision: str              # fp32, bf16, fp16
    autocast_dtype: torch.dtype | None
    use_scaler: bool

    def autocast(self):
        """Autocast for the forward pass; a no-op in fp32."""
        if self.autocast_dtype is None:
            return _NO_AUTOCAST
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    @property
    def label(self) -> str:
        name = str(self.device)
        if self.device.type == "cuda":
            name = f"cuda:{torch.cuda.current_device()} ({torch.cuda.get_device_name()})"
        return name


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def pick_device(requested: str) -> torch.device:
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise UserError("run.device: cuda was asked for but no CUDA GPU is visible. "
                        "Use run.device=auto (or cpu), or check CUDA_VISIBLE_DEVICES and the driver.")
    if requested == "mps" and not _mps_available():
        raise UserError("run.device: mps was asked for but is not available here. Use run.device=auto.")
    return torch.device(requested)


def pick_precision(requested: str, device: torch.device) -> Placement:
    if requested == "auto":
        if device.type == "cuda":
            requested = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            requested = "fp32"
    if requested == "fp16" and device.type == "cpu":
        raise UserError("run.precision: fp16 is not supported on the CPU. Use fp32 or bf16.")
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[requested]
    return Placement(device, requested, dtype, use_scaler=(requested == "fp16" and device.type == "cuda"))


def place(device: str, precision: str) -> Placement:
    dev = pick_device(device)
    return pick_precision(precision, dev)
