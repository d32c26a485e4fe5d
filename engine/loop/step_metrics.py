"""Per-step values on their way out: device buffers, one host transfer per flush, rates, checks.

The loop calls `record` after each optimizer step; nothing here reads the device until
`flush`, which moves every buffered loss and grad norm (and the per-layer norms of sampled
steps) to the host in one transfer (the only sync), writes them to metrics.jsonl, emits one
Metrics event, and checks the values (non-finite, spikes). The rate clock counts running time only: pauses are left out, so
throughput and ETA describe training, not waiting.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import torch

from ..control import events as ev
from ..control.events import AlertKind
from ..store.runlog import RunLog
from .spikes import SpikeWatch

# A flush is due after log_every steps or this long, whichever comes first.
FLUSH_SECONDS = 0.5
# The throughput shown is smoothed over about this many seconds of running time.
RATE_TAU_S = 5.0


class RateClock:
    """Running time (wall time minus pauses) and a smoothed steps-per-second over it."""

    def __init__(self, step: int, now: float | None = None):
        now = time.monotonic() if now is None else now
        self.start_step = step
        self._t0 = now
        self._paused_at: float | None = None
        self._paused_s = 0.0
        self._last_t, self._last_step = 0.0, step
        self.rate: float | None = None   # smoothed steps per second

    def running(self, now: float) -> float:
        """Seconds of running time since the clock started."""
        paused = self._paused_s + (now - self._paused_at if self._paused_at is not None else 0.0)
        return max(0.0, now - self._t0 - paused)

    def pause(self, now: float | None = None) -> None:
        if self._paused_at is None:
            self._paused_at = time.monotonic() if now is None else now

    def resume(self, now: float | None = None) -> None:
        if self._paused_at is not None:
            now = time.monotonic() if now is None else now
            self._paused_s += now - self._paused_at
            self._paused_at = None

    def tick(self, step: int, now: float) -> float | None:
        """Fold the steps since the last tick into the smoothed rate; returns it."""
        t = self.running(now)
        dt = t - self._last_t
        if dt <= 0 or step <= self._last_step:
            return self.rate
        instant = (step - self._last_step) / dt
        if self.rate is None:
            self.rate = instant
        else:
            a = 1.0 - math.exp(-dt / RATE_TAU_S)
            self.rate += a * (instant - self.rate)
        self._last_t, self._last_step = t, step
        return self.rate

    def eta(self, step: int, total: int, now: float) -> float | None:
        """Seconds left at the average pace of this process's running time."""
        t = self.running(now)
        done = step - self.start_step
        if done <= 0 or t <= 0:
            return None
        return max(0, total - step) * t / done


class StepMetrics:
    """Owns the per-step buffers, the flush, the rate clock, spike watch and AMP skip counts."""

    def __init__(self, log: RunLog, emit: Callable[[Any], None], *, start_step: int,
                 layer_names: list[str] | None = None):
        self.log = log
        self.layer_names = layer_names or []   # what each per-layer norm tensor's rows are
        self.emit = emit
        self.clock = RateClock(start_step)
        self.spikes = SpikeWatch()
        self.amp_skipped = 0                 # fp16 steps the GradScaler skipped (this process)
        self._amp_steps: set[int] = set()    # which of the buffered steps were skipped
        self._loss: list[torch.Tensor] = []
        self._norm: list[torch.Tensor] = []
        self._steps: list[int] = []
        self._lrs: list[list[float]] = []
        self._epochs: list[int] = []
        self._layers: list[tuple[int, torch.Tensor]] = []  # (step, one norm per layer) of sampled steps
        self._t_flush = time.monotonic()

    def __len__(self) -> int:
        return len(self._steps)

    def record(self, step: int, epoch: int, loss: torch.Tensor, norm: torch.Tensor, lrs: list[float],
               amp_skipped: bool = False, layer_norms: torch.Tensor | None = None) -> None:
        """One optimizer step's values (device tensors stay on the device)."""
        if layer_norms is not None:
            self._layers.append((step, layer_norms))
        self._loss.append(loss)
        # clip_grad_norm_ / get_total_norm run without grad: no detach needed; fp32 for the stack
        self._norm.append(norm if norm.dtype == torch.float32 else norm.float())
        self._steps.append(step)
        self._lrs.append(lrs)
        self._epochs.append(epoch)
        if amp_skipped:
            self.amp_skipped += 1
            self._amp_steps.add(step)

    def due(self, log_every: int, now: float) -> bool:
        return len(self._steps) >= log_every or now - self._t_flush >= FLUSH_SECONDS

    def pause(self) -> None:
        self.clock.pause()

    def resume(self) -> None:
        self.clock.resume()

    def flush(self, *, total_steps: int, grad_clip: float | None, batch_size: int, phase: str,
              memory: dict[str, float], spike_factor: float, now: float | None = None) -> str | None:
        """Report the buffered steps; returns a message when a value was non-finite, else None."""
        if not self._steps:
            return None
        now = time.monotonic() if now is None else now
        self._t_flush = now
        # The one host sync per flush: both series (and the sampled layer norms) in a single transfer.
        both = torch.stack(self._loss + self._norm)
        if self._layers:
            both = torch.cat([both, *(t for _, t in self._layers)])
        if both.device.type != "cpu":
            both = both.cpu()
        both = both.tolist()
        n = len(self._loss)
        losses, norms = both[:n], both[n:2 * n]
        steps, lrs, epochs, amp = self._steps, self._lrs, self._epochs, self._amp_steps
        layers, width = {}, len(self.layer_names)
        for i, (s, _) in enumerate(self._layers):
            row = both[2 * n + i * width: 2 * n + (i + 1) * width]
            layers[s] = dict(zip(self.layer_names, row))
        self._loss, self._norm, self._steps, self._lrs, self._epochs = [], [], [], [], []
        self._amp_steps, self._layers = set(), []
        rate = self.clock.tick(steps[-1], now)
        last_layers = max(layers) if layers else None
        clipped = sum(1 for x in norms if grad_clip is not None and x > grad_clip)
        with self.log.lock:  # the lines and their event together (RunLog's docstring says why)
            self.log.train_steps(steps, epochs, losses, lrs, norms, amp)
            for s, values in layers.items():
                self.log.metric({"step": s, "layer_norms": values})
            self._emit_metrics(steps, losses, norms, lrs, epochs, clipped, phase, rate, batch_size, now,
                               total_steps, memory, layers, last_layers)
        return self._check(steps, losses, norms, amp, spike_factor)

    def _emit_metrics(self, steps, losses, norms, lrs, epochs, clipped, phase, rate, batch_size, now,
                      total_steps, memory, layers, last_layers) -> None:
        self.emit(ev.Metrics(
            steps=steps, loss=losses, grad_norm=norms, lr=[lr[0] for lr in lrs], epoch=epochs[-1],
            lrs=lrs[-1], clipped=clipped, phase=phase, steps_per_s=rate or 0.0,
            samples_per_s=(rate or 0.0) * batch_size, elapsed=self.clock.running(now),
            eta=self.clock.eta(steps[-1], total_steps, now), total_steps=total_steps,
            memory=memory, amp_skipped=self.amp_skipped,
            layer_norms=layers[last_layers] if last_layers is not None else {}, layer_norms_step=last_layers))

    def _check(self, steps: list[int], losses: list[float], norms: list[float], amp: set[int],
               spike_factor: float) -> str | None:
        for s, loss, norm in zip(steps, losses, norms):
            if s in amp and math.isfinite(loss):
                continue  # an fp16 overflow: the GradScaler skipped it and lowered its scale, as designed
            if not (math.isfinite(loss) and math.isfinite(norm)):
                bad, value = ("loss", loss) if not math.isfinite(loss) else ("grad norm", norm)
                return f"non-finite {bad} ({value}) at step {s}"
            spike = self.spikes.check(s, loss, spike_factor)
            if spike is not None:
                with self.log.lock:
                    self.log.event(AlertKind.SPIKE, s, message=spike, details="")
                    self.emit(ev.Alert(s, AlertKind.SPIKE, spike))
        return None
