"""A bounded, decimated history of one metric, so charts cost the same at step 10³ and 10⁷.

Two levels: the last `recent` points exactly, and the whole run in at most
`buckets` buckets of min/max/last. When the buckets fill, neighbours are merged
pairwise and the bucket width doubles, so memory and the cost of `columns()`
are bounded by `recent + buckets` whatever the run length. Torch-free.

Both levels are kept as parallel sequences (steps in one, values in another)
rather than a tuple or an object per point: the dashboard folds every step of a
run into five of these on the UI thread, and draws from them every few seconds,
and that thread's time is taken from a Python-bound training loop under the GIL.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import deque
from dataclasses import dataclass


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
        self._rsteps: deque[int] = deque(maxlen=recent)    # the recent window: steps
        self._rvalues: deque[float] = deque(maxlen=recent)  # and their values
        # the buckets, one list per field (see Bucket)
        self._index: list[int] = []
        self._lo: list[float] = []
        self._hi: list[float] = []
        self._last: list[float] = []
        self._last_step: list[int] = []
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

    @property
    def recent(self) -> deque[tuple[int, float]]:
        """The recent window as (step, value) pairs, oldest first (a copy, for inspection)."""
        return deque(zip(self._rsteps, self._rvalues), maxlen=self._rsteps.maxlen)

    @property
    def buckets(self) -> list[Bucket]:
        """The buckets, oldest first (a copy, for inspection)."""
        return [Bucket(*b) for b in zip(self._index, self._lo, self._hi, self._last, self._last_step)]

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
        self._rsteps.append(step)
        self._rvalues.append(value)
        idx = step // self.width
        if self._index and self._index[-1] == idx:
            self._lo[-1] = min(self._lo[-1], value)
            self._hi[-1] = max(self._hi[-1], value)
            self._last[-1], self._last_step[-1] = value, step
        else:
            self._add_bucket(idx, value, value, value, step)

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
        self._rsteps.extend(steps)
        self._rvalues.extend(values)
        index, lo, hi = self._index, self._lo, self._hi
        i = 0
        while i < n:
            w = self.width
            idx = steps[i] // w
            j = bisect_left(steps, (idx + 1) * w, i)  # first step past this bucket
            chunk = values[i:j]
            if index and index[-1] == idx:
                lo[-1], hi[-1] = min(lo[-1], min(chunk)), max(hi[-1], max(chunk))
                self._last[-1], self._last_step[-1] = chunk[-1], steps[j - 1]
            else:
                self._add_bucket(idx, min(chunk), max(chunk), chunk[-1], steps[j - 1])
                index, lo, hi = self._index, self._lo, self._hi  # a coarsening makes new lists
            i = j

    def _add_bucket(self, idx: int, lo: float, hi: float, last: float, step: int) -> None:
        self._index.append(idx)
        self._lo.append(lo)
        self._hi.append(hi)
        self._last.append(last)
        self._last_step.append(step)
        if len(self._index) > self.max_buckets:
            self._coarsen()

    def _coarsen(self) -> None:
        """Double the bucket width, merging buckets that now share an index."""
        self.width *= 2
        index, lo, hi, last, last_step = [], [], [], [], []
        for i, l, h, v, s in zip(self._index, self._lo, self._hi, self._last, self._last_step):
            i //= 2
            if index and index[-1] == i:
                lo[-1], hi[-1] = min(lo[-1], l), max(hi[-1], h)
                last[-1], last_step[-1] = v, s
            else:
                index.append(i)
                lo.append(l)
                hi.append(h)
                last.append(v)
                last_step.append(s)
        self._index, self._lo, self._hi, self._last, self._last_step = index, lo, hi, last, last_step

    def columns(self, x0: float, x1: float, n: int) -> list[Column | None]:
        """`n` columns spanning steps [x0, x1]; None where no point falls.

        Uses the exact recent points when they cover x0, else the buckets.
        """
        out: list[Column | None] = [None] * n
        if n <= 0 or not self.count:
            return out
        span = max(x1 - x0, 1e-9)
        scale = (n - 1) / span if n > 1 else 0.0
        if self._rsteps and self._rsteps[0] <= x0:
            steps = list(self._rsteps)
            los = his = lasts = list(self._rvalues)
        else:
            # A bucket is drawn at its last step, where its `last` value lives.
            steps, los, his, lasts = self._last_step, self._lo, self._hi, self._last
        if not self.ordered:
            return _columns_any_order(out, zip(steps, los, his, lasts), x0, x1, scale)
        # Steps ascend, so each column's points are one slice, found by a C-level bisect per
        # column rather than a Python step per point (up to 4,096 recent points per series,
        # five series a frame), then a C-level min/max over it.
        i, end = bisect_left(steps, x0), bisect_right(steps, x1)
        while i < end:
            col = int((steps[i] - x0) * scale + 0.5)
            j = end
            if scale and col < n - 1:
                # the column's far edge in steps, then exact: col() is monotone in the step, and
                # the float edge can be off by a point either way
                j = bisect_left(steps, x0 + (col + 0.5) / scale, i + 1, end)
                while j < end and int((steps[j] - x0) * scale + 0.5) <= col:
                    j += 1
                while j > i + 1 and int((steps[j - 1] - x0) * scale + 0.5) > col:
                    j -= 1
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
