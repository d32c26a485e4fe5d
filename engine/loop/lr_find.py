"""The LR range test (Smith 2015; fastai's lr_find, Lightning's Tuner.lr_find), torch-free at its core.

The LR grows exponentially from `start` to `end`, one optimizer step per value. While it runs,
the loss is smoothed with an EMA (bias-corrected, beta 0.98, as fastai and Lightning do) and the
sweep stops early once that passes `diverge` x its best. The curve is read afterwards from a
centred moving average instead: an EMA lags by about 1/(1 - beta) steps, which over a
100-step sweep flattens the real descent until batch noise in the flat part looks as steep.
The suggestion is the steepest descent of that curve against log LR, looked for after the first
10% of the sweep and before its last 5%; min/10 (the LR of the lowest point, divided by 10)
is given beside it. Restoring the model and the optimizer is the
caller's job (see engine/loop/lr_find_run.py): this module only sweeps and reads the curve.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable

SUGGESTION_RULE = ("steepest descent of the loss (a centred moving average) against log LR, between the "
                   "first 10% and the last 5% of the sweep")


@dataclass(frozen=True)
class Sweep:
    """How the test sweeps: from `start` to `end` over `steps` steps."""

    start: float = 1e-7
    end: float = 10.0
    steps: int = 100
    beta: float = 0.98        # smoothing of the loss
    diverge: float = 4.0      # stop once the smoothed loss exceeds this x its best

    def lr_at(self, i: int) -> float:
        """The LR of step i (0-based): start at 0, end at steps - 1."""
        if self.steps <= 1:
            return self.start
        return self.start * (self.end / self.start) ** (i / (self.steps - 1))

    def check(self) -> None:
        """ValueError with the fix when the sweep makes no sense."""
        if not (self.start > 0 and self.end > self.start and math.isfinite(self.end)):
            raise ValueError(f"the sweep needs 0 < start < end, got start={self.start:g} end={self.end:g}")
        if self.steps < 10:
            raise ValueError(f"the sweep needs at least 10 steps to read a curve, got {self.steps}")
        if not 0 <= self.beta < 1 or self.diverge <= 1:
            raise ValueError("beta must be in [0, 1) and diverge > 1")


@dataclass
class LrFindResult:
    """The curve and what it suggests; `to_dict()` is what lr_find.json and the event carry."""

    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)     # each step's loss, as it came
    smoothed: list[float] = field(default_factory=list)   # the curve read (centred moving average)
    suggestion: float | None = None
    min_over_10: float | None = None
    rule: str = SUGGESTION_RULE
    stopped: str = ""          # why the sweep ended before its last step ("" when it ran through)
    step: int | None = None    # the run's step when the test ran mid-run

    def to_dict(self) -> dict:
        return asdict(self)


def sweep(train_step: Callable[[float], float], sw: Sweep = Sweep()) -> LrFindResult:
    """Run the sweep: `train_step(lr)` sets the LR, takes one optimizer step and returns its loss."""
    sw.check()
    out = LrFindResult()
    avg, best = 0.0, math.inf
    for i in range(sw.steps):
        lr = sw.lr_at(i)
        loss = float(train_step(lr))
        out.lrs.append(lr)
        out.losses.append(loss)
        if not math.isfinite(loss):
            out.stopped = f"the loss became non-finite at lr {lr:.3g}"
            break
        avg = sw.beta * avg + (1 - sw.beta) * loss
        ema = avg / (1 - sw.beta ** (i + 1))
        best = min(best, ema)
        if i > 0 and ema > sw.diverge * best:
            out.stopped = f"the loss diverged at lr {lr:.3g} (smoothed {ema:.3g} > {sw.diverge:g} x its best {best:.3g})"
            break
    finite = [v for v in out.losses if math.isfinite(v)]
    out.smoothed = centred_average(finite)
    out.suggestion, out.min_over_10 = suggest(out.lrs[:len(finite)], out.smoothed)
    return out


def centred_average(values: list[float], half: int | None = None) -> list[float]:
    """Each value averaged with its neighbours, `half` on each side (fewer at the ends): no lag."""
    n = len(values)
    h = max(2, n // 20) if half is None else half
    prefix = [0.0]
    for v in values:
        prefix.append(prefix[-1] + v)
    out = []
    for i in range(n):
        a, b = max(0, i - h), min(n, i + h + 1)
        out.append((prefix[b] - prefix[a]) / (b - a))
    return out


def suggest(lrs: list[float], curve: list[float]) -> tuple[float | None, float | None]:
    """(steepest-descent LR, min/10 LR) of a curve, or None where the curve is too short to read.

    The slope at each point is a least-squares fit over its neighbours (about 1/6 of the sweep),
    so the noise of single batches does not pass for a descent.
    """
    n = len(curve)
    if n < 5:
        return None, None
    x = [math.log10(lr) for lr in lrs]
    h = max(2, n // 12)
    lo, hi = n // 10, n - max(1, n // 20)
    best_i, best_slope = None, 0.0
    for i in range(max(lo, 1), min(hi, n - 1)):
        a, b = max(0, i - h), min(n, i + h + 1)
        xs, ys = x[a:b], curve[a:b]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        sxx = sum((u - mx) ** 2 for u in xs)
        slope = sum((u - mx) * (v - my) for u, v in zip(xs, ys)) / sxx if sxx > 0 else 0.0
        if math.isfinite(slope) and slope < best_slope:
            best_i, best_slope = i, slope
    steepest = lrs[best_i] if best_i is not None else None
    i_min = min(range(n), key=lambda i: curve[i])
    return steepest, lrs[i_min] / 10
