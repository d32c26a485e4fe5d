"""The rate clock: throughput and ETA from running time only."""

from __future__ import annotations

import pytest

from danlu.engine.loop.step_metrics import RateClock


def test_pauses_count_neither_in_the_rate_nor_in_the_eta():
    c = RateClock(step=0, now=0.0)
    c.tick(10, now=10.0)                 # 1 step/s
    c.pause(now=10.0)
    c.resume(now=610.0)                  # ten minutes paused
    assert c.tick(20, now=620.0) == pytest.approx(1.0)
    assert c.running(620.0) == pytest.approx(20.0)
    assert c.eta(20, 100, now=620.0) == pytest.approx(80.0)  # 80 steps left at 1 step/s, not 80 x 31


def test_a_resumed_run_paces_from_its_own_first_step():
    c = RateClock(step=500, now=0.0)     # resumed at step 500: the earlier steps took no time here
    c.tick(520, now=10.0)
    assert c.eta(520, 600, now=10.0) == pytest.approx(40.0)


def test_the_rate_is_smoothed_not_instant():
    c = RateClock(step=0, now=0.0)
    c.tick(10, now=1.0)                  # 10 step/s
    rate = c.tick(11, now=2.0)           # one slow second (1 step/s) moves it part of the way
    assert 1.0 < rate < 10.0 and rate > 5.0
