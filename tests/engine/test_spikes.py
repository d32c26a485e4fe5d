"""Spike alerts: a real jump is flagged at once; the noise of a small, converged loss is not."""

from __future__ import annotations

import random

from danlu.engine.loop.spikes import COOLDOWN, SpikeWatch


def _alerts(losses, factor=4.0):
    w = SpikeWatch()
    return [(s, m) for s, l in enumerate(losses, 1) if (m := w.check(s, l, factor)) is not None]


def _converged(n=2000, seed=0):
    """A classifier near 99%, as the benchmark CNN's late batch losses: median 0.0065, p99 ~30x, max ~50x."""
    rnd = random.Random(seed)
    return [0.0065 * rnd.lognormvariate(0, 1.35) for _ in range(n)]


def test_a_jump_is_flagged_at_its_step():
    losses = [2.0 - i / 100 for i in range(100)] + [500.0] + [1.0] * 50
    alerts = _alerts(losses)
    assert [s for s, _ in alerts] == [101]
    assert "loss spike at step 101: 500 vs recent" in alerts[0][1]


def test_divergence_from_a_small_loss_is_flagged():
    losses = _converged(1000)
    losses += [0.4 + 0.1 * i for i in range(50)]  # the LR was raised too far
    assert 1001 in [s for s, _ in _alerts(losses)]


def test_the_noise_of_a_converged_loss_is_not_a_spike():
    """The plain rule (loss > 4x its running mean) alerts ~100 times in 2,000 steps; this one a few times."""
    for seed in range(5):
        losses = _converged(seed=seed)
        ema, naive = None, 0
        for s, l in enumerate(losses, 1):
            naive += ema is not None and s > 20 and l > 4 * ema
            ema = l if ema is None else 0.95 * ema + 0.05 * l
        assert naive > 50, naive  # the case is real: the plain ratio rule fires on it
        assert len(_alerts(losses)) <= min(naive / 8, 12)


def test_repeated_spikes_are_one_alert_per_cooldown_and_counted():
    losses = [1.0] * 100
    for k in range(5):  # five spikes inside one cooldown
        losses += [1.0] * 9 + [100.0]
    losses += [1.0] * COOLDOWN + [100.0]
    alerts = _alerts(losses)
    assert len(alerts) == 2
    assert "(4 more in the 100 steps before)" in alerts[1][1]
