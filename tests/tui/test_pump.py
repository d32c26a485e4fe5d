"""The EventPump folds a tick's worth of Metrics batches at once: what is shown must not change."""

from __future__ import annotations

import dataclasses
import random

from danlu.engine.control import events as ev
from danlu.engine.control.channel import Channel
from danlu.tui.pump import EventPump
from danlu.tui.run_state import RunState
from danlu.tui.series import Series

from .fake_engine import emit_run, metrics


SERIES = ("loss", "ema", "grad", "grad_ema", "lr", "nonfinite")  # read through their folding properties


def _shown(state: RunState) -> dict:
    """Every public field of the state and every series a chart reads; Series by their contents."""
    out = {}
    names = [f.name for f in dataclasses.fields(state) if not f.name.startswith("_")] + list(SERIES)
    for name in names:
        v = getattr(state, name)
        if isinstance(v, Series):
            v = (list(v.recent), [(b.index, b.lo, b.hi, b.last, b.last_step) for b in v.buckets],
                 v.width, v.count, v.skipped, v.first_step, v.last_step, v.last)
        elif name == "version":
            continue  # bumps once per folded event: fewer folds is the point
        out[name] = list(v) if hasattr(v, "maxlen") else v
    return out


def _stream(seed: int) -> list:
    """A run's events with NaN losses, clipping and answers between Metrics batches."""
    ch = Channel(max_pending_metrics=10**6)
    emit_run(ch, steps=1500, per=10, seed=seed)
    rnd = random.Random(seed)
    for start in range(1500, 1600, 10):
        m = metrics(start, 10, rnd)
        if start == 1550:
            m = dataclasses.replace(m, loss=[float("nan")] + m.loss[1:])
        ch.emit(m)
    return ch.drain()


def test_a_tick_shows_exactly_what_folding_event_by_event_shows():
    for seed in range(3):
        events = _stream(seed)
        one_by_one = RunState()
        for e in events:
            one_by_one.apply(e)
        ch = Channel(max_pending_metrics=10**6)
        pump = EventPump(ch)
        for e in events:
            ch.emit(e)
        notable = pump.tick()
        assert _shown(pump.state) == _shown(one_by_one)
        assert notable == [e for e in events if not isinstance(e, ev.Metrics)]
        # the point of it: far fewer folds than batches
        assert pump.state.version < one_by_one.version / 3


def test_the_last_batch_keeps_its_own_clipped_fraction():
    ch = Channel()
    pump = EventPump(ch)
    rnd = random.Random(0)
    batches = [dataclasses.replace(metrics(i * 10, 10, rnd), clipped=c) for i, c in enumerate([10, 10, 10, 0])]
    for m in batches:
        ch.emit(m)
    pump.tick()
    assert pump.state.clipped == 30
    assert pump.state.recent_clipped == 0.0  # the last batch: none clipped, not 30/40
