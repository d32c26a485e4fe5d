"""Drains the channel on the UI's timer and folds events into the RunState.

The engine never waits on us: it appends to the channel and moves on; we pick
everything up at most ~10 times a second, so a burst of Metrics batches costs
one redraw, not one per batch.
"""

from __future__ import annotations

from typing import Any

from danlu.engine import events as ev
from danlu.engine.channel import Channel

from .run_state import RunState

# Cap on events folded per tick, so a backlog cannot stall a frame; the rest waits.
MAX_EVENTS_PER_TICK = 2000


class EventPump:
    """Owns the UI side of the channel: sends commands, drains and folds events."""

    def __init__(self, channel: Channel, state: RunState | None = None):
        self.channel = channel
        self.state = state or RunState()
        self.sent: dict[int, ev.Command] = {}  # id -> command, to read the answers

    def send(self, command: ev.Command) -> ev.Command:
        self.sent[command.id] = command
        if len(self.sent) > 1000:  # answered long ago; keep the map bounded
            self.sent.pop(next(iter(self.sent)))
        return self.channel.send(command)

    def tick(self) -> list[Any]:
        """Fold pending events into the state; return the non-Metrics ones for the log."""
        events = self.channel.drain(MAX_EVENTS_PER_TICK)
        notable = []
        for e in events:
            self.state.apply(e, self.sent)
            if not isinstance(e, ev.Metrics):
                notable.append(e)
        return notable
