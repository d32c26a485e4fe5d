"""Shared by the benchmarks: the machine description, summary statistics, in-memory data.

Not a test; nothing here is asserted in CI. Run the scripts from the repository
root as modules (`python -m benchmarks.overhead`), so `benchmarks.common` imports
the same way for the engine's `data.name` as for the script.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import sys
from typing import Iterable

_DATA_CACHE: dict[tuple, object] = {}


def machine() -> str:
    """One line: CPU model, cores, Python, torch (if imported), load average."""
    model = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    torch_v = sys.modules["torch"].__version__ if "torch" in sys.modules else "-"
    threads = sys.modules["torch"].get_num_threads() if "torch" in sys.modules else "-"
    return (f"{model}, {os.cpu_count()} cores, python {platform.python_version()}, torch {torch_v} "
            f"({threads} intra-op threads), load avg {load()}")


def load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def summary(xs: Iterable[float]) -> tuple[float, float, float]:
    """(median, min, max)."""
    xs = list(xs)
    return statistics.median(xs), min(xs), max(xs)


def median_ci(xs: Iterable[float], level: float = 0.95) -> tuple[float, float]:
    """Distribution-free confidence interval for the median: order statistics x_(k), x_(n-k+1).

    k is the largest rank with P(Binomial(n, 1/2) <= k-1) <= (1-level)/2, so the interval
    covers the true median at least `level` of the time whatever the distribution (9 rounds:
    2nd to 8th smallest, 96%). With fewer than 6 values no such k exists: (min, max).
    """
    xs = sorted(xs)
    n = len(xs)
    k, tail = 0, 0.0
    while True:
        tail += math.comb(n, k) / 2**n  # P(B <= k)
        if tail > (1 - level) / 2:
            break
        k += 1
    if k == 0:
        return xs[0], xs[-1]
    return xs[k - 1], xs[n - k]


def bench_data(size: int = 4000, image_size: int = 8, channels: int = 1, num_classes: int = 6,
               seed: int = 0):
    """The built-in shapes dataset, drawn once and kept as tensors (a TensorDataset).

    `data.name: benchmarks.common:bench_data` gives the engine exactly the tensors the
    bare loop uses, and no per-batch drawing cost, so the comparison is of the loops only.
    """
    import torch
    from torch.utils.data import TensorDataset

    from danlu.engine.build.shapes import ShapesDataset

    key = (size, image_size, channels, num_classes, seed)
    if key not in _DATA_CACHE:
        full = ShapesDataset(size=size, image_size=image_size, channels=channels,
                             num_classes=num_classes, seed=seed)
        items = full.__getitems__(list(range(size)))
        x = torch.stack([t for t, _ in items]).contiguous()
        y = torch.tensor([label for _, label in items], dtype=torch.long)
        ds = TensorDataset(x, y)
        ds.num_classes = num_classes  # read by the engine's data builder
        _DATA_CACHE[key] = ds
    return _DATA_CACHE[key]
