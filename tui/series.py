"""A bounded, decimated history of one metric, so charts cost the same at step 10³ and 10⁷.

Two levels: the last `recent` points exactly, and the whole run in at most
`buckets` buckets of min/max/last. When the buckets fill, neighbours are merged
pairwise and the bucket width doubles, so memory and the cost of `columns()`
are bounded by `recent + buckets` whatever the run length. Torch-free.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import deque
from dataclasses import dataclass
from itertools import groupby


@dataclass(slots=True)
class Bucket:
    """All points whose step falls in [index*width, (index+1)*width)."""

    index: int
    lo: float
    hi: float
    last: float
    last_step: int


def all_finite(values: list) -> bool:
    """fsum is exact, so the sum is finite iff every value is; None or overflow: go the slow way."""
    try:
        return math.isfinite(math.fsum(values))
    except (TypeError, OverflowError):
        return False


# What one chart column shows: (lowest, highest, last value) among its points.
Column = tuple[float, float, float]


class Series:
    """Append (step, value) pairs; ask for `columns()` covering any step range."""

    def __init__(self, recent: int = 4096, buckets: int = 1024):
        if buckets < 2:
            raise ValueError("buckets must be >= 2")
        self.recent: deque[tuple[int, float]] = deque(maxlen=recent)
        self.buckets: list[Bucket] = []
        self.max_buckets = buckets
        self.width = 1          # steps per bucket; doubles when the buckets fill
        self.count = 0          # finite points ever appended
        self.skipped = 0        # NaN/inf points, counted but never drawn
        self.first_step: int | None = None
        self.last_step: int | None = None
        self.last: float | None = None
        self.ordered = True     # steps never went back (a precondition of columns' fast path)

    def __len__(self) -> int:
        return self.count

    def append(self, step: int, value: float) -> None:
        if value is None or not math.isfinite(value):
            self.skipped += 1
            return
        value = float(value)
        if self.first_step is None:
            self.first_step = step
        elif step < self.last_step:
            self.ordered = False
        self.last_step, self.last = step, value
        self.count += 1
        self.recent.append((step, value))
        idx = step // self.width
        b = self.buckets[-1] if self.buckets else None
        if b is not None and b.index == idx:
            b.lo = min(b.lo, value)
            b.hi = max(b.hi, value)
            b.last, b.last_step = value, step
        else:
            self.buckets.append(Bucket(idx, value, value, value, step))
            if len(self.buckets) > self.max_buckets:
                self._coarsen()

    def extend(self, steps, values) -> None:
        """Append a batch; the same result as appending point by point, at a fraction of the cost.

        The engine sends steps in ascending batches of `log_every`, and the UI folds
        every step of a run, so this is on the dashboard's hot path: the recent window
        and each bucket's min/max take C-level slices instead of a Python call per point.
        """
        steps, values = list(steps), list(values)
        n = len(steps)
        if (n < 4 or steps != sorted(steps) or not all_finite(values)
                or (self.last_step is not None and steps[0] < self.last_step)):
            for s, v in zip(steps, values):
                self.append(s, v)
            return
        values = list(map(float, values))
        if self.first_step is None:
            self.first_step = steps[0]
        self.last_step, self.last = steps[-1], values[-1]
        self.count += n
        self.recent.extend(zip(steps, values))
        i = 0
        while i < n:
            w = self.width
            idx = steps[i] // w
            j = bisect_left(steps, (idx + 1) * w, i)  # first step past this bucket
            chunk = values[i:j]
            b = self.buckets[-1] if self.buckets else None
            if b is not None and b.index == idx:
                b.lo, b.hi = min(b.lo, *chunk), max(b.hi, *chunk)
                b.last, b.last_step = chunk[-1], steps[j - 1]
            else:
                self.buckets.append(Bucket(idx, min(chunk), max(chunk), chunk[-1], steps[j - 1]))
                if len(self.buckets) > self.max_buckets:
                    self._coarsen()
            i = j

    def _coarsen(self) -> None:
        """Double the bucket width, merging buckets that now share an index."""
        self.width *= 2
        merged: list[Bucket] = []
        for b in self.buckets:
            idx = b.index // 2
            if merged and merged[-1].index == idx:
                m = merged[-1]
                m.lo, m.hi = min(m.lo, b.lo), max(m.hi, b.hi)
                m.last, m.last_step = b.last, b.last_step
            else:
                b.index = idx
                merged.append(b)
        self.buckets = merged

    def columns(self, x0: float, x1: float, n: int) -> list[Column | None]:
        """`n` columns spanning steps [x0, x1]; None where no point falls.

        Uses the exact recent points when they cover x0, else the buckets.
        """
        out: list[Column | None] = [None] * n
        if n <= 0 or not self.count:
            return out
        span = max(x1 - x0, 1e-9)
        scale = (n - 1) / span if n > 1 else 0.0
        if self.recent and self.recent[0][0] <= x0:
            steps = [s for s, _ in self.recent]
            values = [v for _, v in self.recent]
            los = his = lasts = values
        else:
            # A bucket is drawn at its last step, where its `last` value lives.
            steps = [b.last_step for b in self.buckets]
            los, his, lasts = [b.lo for b in self.buckets], [b.hi for b in self.buckets], \
                [b.last for b in self.buckets]
        if not self.ordered:
            return _columns_any_order(out, zip(steps, los, his, lasts), x0, x1, scale)
        # Steps ascend, so each column's points are one slice: a C-level min/max per column,
        # not a Python step per point (up to 4,096 recent points per series, 5 series a frame).
        i, end = bisect_left(steps, x0), bisect_right(steps, x1)
        for col, run in groupby([int((s - x0) * scale + 0.5) for s in steps[i:end]]):
            j = i + len(tuple(run))
            out[col] = (min(los[i:j]), max(his[i:j]), lasts[j - 1])
            i = j
        return out


def _columns_any_order(out: list[Column | None], points, x0: float, x1: float, scale: float):
    """columns() for steps appended out of order: a point at a time."""
    for s, lo, hi, last in points:
        if s < x0 or s > x1:
            continue
        i = int((s - x0) * scale + 0.5)
        c = out[i]
        out[i] = (lo, hi, last) if c is None else (min(c[0], lo), max(c[1], hi), last)
    return out
