"""The two queues between the engine thread and whoever watches it.

The engine never waits here: `emit` appends and returns. Metrics batches are
merged when the consumer falls behind, so memory stays bounded (the full record
is on disk); every other event is kept. Imports no torch.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from dataclasses import replace

from .events import Command, Metrics

# Past this many pending metrics batches, the oldest two are merged into one (on the engine's
# thread, at emit). Set above what one drain of the dashboard (its TICK_S) finds at
# log_every 1 and 1,000 steps/s, so that an ordinary fast run needs no merging.
MAX_PENDING_METRICS = 256
# A merged batch longer than this is thinned (every other point kept, last kept).
MAX_POINTS_PER_BATCH = 4096


def join_metrics(batches: list[Metrics]) -> Metrics:
    """One batch covering consecutive batches (oldest first), every point kept.

    Counts (`clipped`) add up; everything that describes "now" (epoch, LRs, rates,
    memory, ...) comes from the last batch.
    """
    if len(batches) == 1:
        return batches[0]
    steps, loss, grad, lr = [], [], [], []
    for m in batches:
        steps += m.steps
        loss += m.loss
        grad += m.grad_norm
        lr += m.lr
    b = batches[-1]
    sampled = next((m for m in reversed(batches) if m.layer_norms), b)  # the newest per-layer norms
    return Metrics(
        steps=steps, loss=loss, grad_norm=grad, lr=lr, epoch=b.epoch, lrs=b.lrs,
        clipped=sum(m.clipped for m in batches), phase=b.phase, steps_per_s=b.steps_per_s,
        samples_per_s=b.samples_per_s, elapsed=b.elapsed, eta=b.eta,
        total_steps=b.total_steps, memory=b.memory, amp_skipped=b.amp_skipped,
        layer_norms=sampled.layer_norms, layer_norms_step=sampled.layer_norms_step,
    )


def join_runs_of_metrics(events: list, keep_last: bool = False) -> list:
    """Each run of adjacent Metrics batches joined into one, every point kept; other events stay
    where they are. With `keep_last`, a run's last batch stays whole after the joined rest (the
    dashboard shows the last batch's clipped fraction)."""
    out: list = []
    run: list[Metrics] = []

    def flush() -> None:
        if not run:
            return
        if keep_last and len(run) > 1:
            out.extend((join_metrics(run[:-1]), run[-1]))
        else:
            out.append(join_metrics(run))  # a run of one is that batch itself
        run.clear()

    for e in events:
        if isinstance(e, Metrics):
            run.append(e)
        else:
            flush()
            out.append(e)
    flush()
    return out


def merge_metrics(a: Metrics, b: Metrics) -> Metrics:
    """One batch covering both a and b (b is later); thinned if it grows too long."""
    m = join_metrics([a, b])
    if len(m.steps) <= MAX_POINTS_PER_BATCH:
        return m
    keep = range(len(m.steps) - 1, -1, -2)[::-1]  # every other point, the last one kept
    return replace(m, steps=[m.steps[i] for i in keep], loss=[m.loss[i] for i in keep],
                   grad_norm=[m.grad_norm[i] for i in keep], lr=[m.lr[i] for i in keep])


class Channel:
    """Commands from the UI to the engine; events from the engine to the UI."""

    def __init__(self, max_pending_metrics: int = MAX_PENDING_METRICS):
        self._commands: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self._events: deque = deque()
        self._lock = threading.Lock()
        self._pending_metrics = 0
        self._max_metrics = max_pending_metrics
        self.merged = 0  # how many times batches were merged (for tests/benchmarks)
        self._taps: tuple = ()

    def add_tap(self, tap) -> None:
        """Also hand every event to `tap(event)` (the control socket's server), on the emitting thread,
        under this channel's lock: a tap must only append and return."""
        with self._lock:
            self._taps = (*self._taps, tap)

    def remove_tap(self, tap) -> None:
        with self._lock:
            self._taps = tuple(t for t in self._taps if t != tap)

    # -- UI side --
    def send(self, command: Command) -> Command:
        self._commands.put(command)
        return command

    def drain(self, limit: int | None = None) -> list:
        """Take pending events, oldest first (all of them unless `limit`)."""
        with self._lock:
            n = len(self._events) if limit is None else min(limit, len(self._events))
            out = [self._events.popleft() for _ in range(n)]
            self._pending_metrics -= sum(isinstance(e, Metrics) for e in out)
        return out

    def pending(self) -> int:
        return len(self._events)

    # -- engine side --
    def emit(self, event) -> None:
        with self._lock:
            if isinstance(event, Metrics):
                self._pending_metrics += 1
                if self._pending_metrics > self._max_metrics:
                    self._merge_oldest_metrics()
            self._events.append(event)
            for tap in self._taps:
                tap(event)

    def _merge_oldest_metrics(self) -> None:
        first = None
        for i, ev in enumerate(self._events):
            if isinstance(ev, Metrics):
                if first is None:
                    first = i
                else:
                    self._events[i] = merge_metrics(self._events[first], ev)
                    del self._events[first]
                    self._pending_metrics -= 1
                    self.merged += 1
                    return

    def poll_command(self, timeout: float | None = None) -> Command | None:
        """Next command, or None. Blocks up to `timeout` seconds when given."""
        try:
            if timeout is None:
                # once per step on the training thread: an empty check is cheaper than a raised Empty
                return None if self._commands.empty() else self._commands.get_nowait()
            return self._commands.get(timeout=timeout)
        except queue.Empty:
            return None
