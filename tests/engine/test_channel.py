"""The channel: events in order, bounded memory, nothing but metrics ever merged."""

from __future__ import annotations

import json

from danlu.engine.control import events as ev
from danlu.engine.control.channel import Channel


def _metrics(step: int, n: int = 10) -> ev.Metrics:
    steps = list(range(step, step + n))
    return ev.Metrics(steps=steps, loss=[1.0] * n, grad_norm=[0.5] * n, lr=[0.1] * n, epoch=0,
                      lrs=[0.1], clipped=1, phase="constant", steps_per_s=1.0, samples_per_s=1.0,
                      elapsed=1.0, eta=None, total_steps=10**7)


def test_slow_consumer_keeps_memory_bounded_and_every_non_metric_event():
    ch = Channel(max_pending_metrics=8)
    for i in range(10_000):
        ch.emit(_metrics(i * 10))
        if i % 100 == 0:
            ch.emit(ev.Alert(i, "spike", f"alert {i}"))
    assert ch.pending() <= 8 + 100
    out = ch.drain()
    alerts = [e for e in out if isinstance(e, ev.Alert)]
    assert len(alerts) == 100
    metrics = [e for e in out if isinstance(e, ev.Metrics)]
    assert metrics[-1].steps[-1] == 99_999          # the newest point always survives
    assert sum(m.clipped for m in metrics) == 10_000  # counts are summed, not lost
    assert all(len(m.steps) <= 4096 for m in metrics)


def test_events_and_commands_round_trip_through_json():
    for obj in (_metrics(0), ev.CommandApplied(3, "set_lr", 10, [0.1], [0.05], "rescale"),
                ev.set_lr(3e-4, group=1, mode="override")):
        d = json.loads(json.dumps(ev.to_dict(obj)))
        assert ev.from_dict(d) == obj


def test_commands_arrive_in_order():
    ch = Channel()
    sent = [ch.send(ev.pause()), ch.send(ev.set_lr(0.1)), ch.send(ev.resume())]
    got = [ch.poll_command(), ch.poll_command(), ch.poll_command()]
    assert got == sent and ch.poll_command() is None
    assert len({c.id for c in sent}) == 3
