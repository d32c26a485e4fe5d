"""Numbers a person typed mid-run (LR, momentum, betas): floats or a reason."""

from __future__ import annotations

from typing import Any


def as_float(name: str, value: Any, expected: str) -> float:
    """`value` as a float (True/False refused), or ValueError saying `name must be <expected>`."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {expected}, got {value!r}") from None
    return x
