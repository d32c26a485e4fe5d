"""Loss spikes: a loss far above its running level and outside its recent noise. Imports no torch.

The plain rule (loss > spike_factor x its running mean) is right while the loss is large,
and wrong once it is small and noisy: a classifier near 99% has batch losses of 0.02 that
jump to 0.2 on one hard batch, routinely. On such a loss that rule alerts every few dozen
steps, each a toast and a full redraw of the dashboard. So a spike must also stand out from
the loss's own noise, and alerts are spaced (docs/performance.md, "What we learned").
"""

from __future__ import annotations

# Running level and noise: exponential moving averages, about the last 20 steps.
WEIGHT = 0.95
# A spike lies above the running level by more than NOISE x spike_factor mean deviations
# (16 at the default factor 4); ordinary heavy-tailed batch noise stays under it, while a
# x1000 loss and a jump from a converged 0.02 to 0.4 are still flagged at their step
# (tests/engine/test_spikes.py).
NOISE = 4.0
# Steps after an alert in which further spikes are counted, not alerted.
COOLDOWN = 100
WARMUP = 20  # the first steps set the level


class SpikeWatch:
    """Feed every finite loss in step order; `check` returns an alert message or None."""

    def __init__(self) -> None:
        self.level: float | None = None  # running mean of the loss
        self.noise = 0.0                 # running mean absolute deviation from it
        self._quiet_until = -1
        self._held = 0                   # spikes seen during the cooldown

    def check(self, step: int, loss: float, factor: float) -> str | None:
        level, msg = self.level, None
        if level is None:
            self.level = loss
            return None
        if step > WARMUP and loss > factor * level and loss - level > NOISE * factor * self.noise:
            if step < self._quiet_until:
                self._held += 1
            else:
                more = f" ({self._held} more in the {COOLDOWN} steps before)" if self._held else ""
                msg = f"loss spike at step {step}: {loss:.4g} vs recent {level:.4g}{more}"
                self._quiet_until, self._held = step + COOLDOWN, 0
        # what a spike adds to the level and noise is capped at the threshold, so one outlier
        # does not hide the next; a lasting new level is still taken up within a few dozen steps
        if step > WARMUP:
            loss = min(loss, level + NOISE * factor * self.noise) if self.noise else min(loss, factor * level)
        self.noise = WEIGHT * self.noise + (1 - WEIGHT) * abs(loss - level)
        self.level = WEIGHT * level + (1 - WEIGHT) * loss
        return msg
