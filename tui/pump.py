"""Drains the channel on the UI's timer and folds events into the RunState.

The engine never waits on us: it appends to the channel and moves on; the
dashboard picks everything up a few times a second (faster while a command
waits for its answer), so a burst of Metrics batches costs one fold and one
redraw, not one per batch.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from danlu.engine.control import events as ev
from danlu.engine.control.channel import Channel, join_runs_of_metrics

from .run_state import RunState

# Cap on events folded per tick, so a backlog cannot stall a frame; the rest waits.
MAX_EVENTS_PER_TICK = 2000


class EventPump:
    """Owns the UI side of the channel: sends commands, drains and folds events."""

    def __init__(self, channel: Channel, state: RunState | None = None):
        self.channel = channel
        self.state = state or RunState()
        self.sent: dict[int, ev.Command] = {}  # id -> command, to read the answers
        self.awaiting: dict[int, float] = {}   # id -> when sent, until its answer is folded
        self.sent_at = 0.0                     # monotonic time of the last send
        self.on_send: Callable[[ev.Command], None] | None = None  # the dashboard hurries its ticks
        # Past events read from the run's files, for the event log (no toasts): the dashboard
        # takes them before the tick's live ones.
        self.backlog: list[Any] = []
        self.history_loaded = False
        self.history: Any = None     # the History read (tui/history.py)
        self.history_seconds = 0.0   # what reading and folding the files took

    def load_history(self, run_dir: str, upto_step: int | None = None, **limits: int | None) -> Any:
        """Draw the run's past from its files (tui/history.py) before any live metrics."""
        from .history import as_events, read_history
        t0 = time.perf_counter()
        h = read_history(run_dir, upto_step, **limits)
        events, commands = as_events(h)
        self.sent.update(commands)
        self.state.load_history(h, events, commands)
        self.backlog.extend(events)
        self.history_loaded = True
        self.history = h
        self.history_seconds = time.perf_counter() - t0
        return h

    def send(self, command: ev.Command) -> ev.Command:
        self.sent[command.id] = command
        if len(self.sent) > 1000:  # answered long ago; keep the map bounded
            self.sent.pop(next(iter(self.sent)))
        self.awaiting[command.id] = self.sent_at = time.monotonic()
        if len(self.awaiting) > 1000:  # an engine that is gone never answers
            self.awaiting.pop(next(iter(self.awaiting)))
        out = self.channel.send(command)
        if self.on_send is not None:
            self.on_send(command)
        return out

    def attach(self, hello: dict[str, Any]) -> None:
        """An attached dashboard's start, from the run's hello (engine/control/protocol.py): the run,
        its state, its files up to the sizes they had when this client joined (the events that
        follow the hello are exactly what came after: no gap, no duplicate), then its "now"."""
        started = hello.get("run_started")
        if isinstance(started, dict):
            self.state.apply(ev.from_dict({"type": "RunStarted", **started}))
        if hello.get("state"):
            self.state.apply(ev.StatusChanged(str(hello["state"]), int(hello.get("step") or 0)))
        sizes = hello.get("history") or {}
        self.load_history(str(hello["run_dir"]), metrics_limit=sizes.get("metrics.jsonl"),
                          events_limit=sizes.get("events.jsonl"))
        now = hello.get("last_metrics")
        if isinstance(now, dict):
            self.state.take_now(ev.from_dict({"type": "Metrics", **now}))

    def tick(self) -> list[Any]:
        """Fold pending events into the state; return the non-Metrics ones for the log."""
        notable = []
        for e in _coalesce(self.channel.drain(MAX_EVENTS_PER_TICK)):
            self.state.apply(e, self.sent)
            if isinstance(e, ev.RunStarted) and e.start_step > 0 and not self.history_loaded:
                # a resumed run: its steps up to the checkpoint are in its files
                self.load_history(e.run_dir, upto_step=e.start_step)
            if not isinstance(e, ev.Metrics):
                notable.append(e)
                if isinstance(e, (ev.CommandApplied, ev.CommandRejected)):
                    self.awaiting.pop(e.command_id, None)
        return notable


def _coalesce(events: list[Any]) -> list[Any]:
    """Runs of adjacent Metrics batches folded as two: all but the last joined, then the last.

    A fast run leaves many small batches per tick, and folding has a fixed cost per batch
    (five Series.extend, two EMAs) on the UI thread, which takes it from a Python-bound
    training loop under the GIL. The last batch stays whole because the grad panel shows
    its clipped fraction ("last batch").
    """
    return join_runs_of_metrics(events, keep_last=True)
