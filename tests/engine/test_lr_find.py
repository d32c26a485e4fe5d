"""The LR range test's sweep and suggestion (the run-level wrappers are tested beside them)."""

from __future__ import annotations

import math

import pytest
import torch

from danlu.engine.loop.lr_find import Sweep, suggest, sweep


def test_the_sweep_is_exponential_from_start_to_end():
    sw = Sweep(start=1e-6, end=1.0, steps=61)
    assert sw.lr_at(0) == pytest.approx(1e-6) and sw.lr_at(60) == pytest.approx(1.0)
    assert sw.lr_at(30) == pytest.approx(1e-3)


def test_a_real_model_gives_a_suggestion_in_its_good_range_and_stops_when_it_diverges():
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = x @ torch.randn(8, 1)
    model = torch.nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)

    def step(lr):
        for g in opt.param_groups:
            g["lr"] = lr
        i = torch.randint(0, 256, (32,))
        loss = torch.nn.functional.mse_loss(model(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    res = sweep(step, Sweep(start=1e-5, end=100.0, steps=100))
    assert res.stopped  # SGD on this problem blows up well before lr 100
    assert len(res.lrs) < 100
    # plain SGD on a well-conditioned least-squares problem learns fast from ~1e-2 and diverges past ~1
    assert 1e-3 < res.suggestion < 1.0, res.suggestion
    assert res.min_over_10 is not None and res.min_over_10 < 1.0


def test_the_suggestion_is_the_steepest_descent_of_the_smoothed_curve():
    lrs = [10 ** (-6 + 6 * i / 99) for i in range(100)]
    # flat, then a drop centred at 1e-3, then a rise: the steepest descent is at the drop
    curve = [2.0 - 1.5 / (1 + math.exp(-(math.log10(lr) + 3) * 4)) + (0.5 * (lr - 0.1) if lr > 0.1 else 0)
             for lr in lrs]
    steepest, min10 = suggest(lrs, curve)
    assert steepest == pytest.approx(1e-3, rel=0.15)
    i_min = min(range(100), key=curve.__getitem__)
    assert min10 == pytest.approx(lrs[i_min] / 10)


def test_a_non_finite_loss_ends_the_sweep_and_says_where():
    res = sweep(lambda lr: float("nan") if lr > 1e-2 else 1.0 / (1 + lr), Sweep(start=1e-5, end=1.0, steps=50))
    assert "non-finite" in res.stopped and res.lrs[-1] > 1e-2 and len(res.smoothed) == len(res.lrs) - 1


@pytest.mark.parametrize("bad", [dict(start=0.0), dict(start=1.0, end=0.1), dict(steps=3)])
def test_nonsense_sweeps_are_refused(bad):
    with pytest.raises(ValueError):
        Sweep(**bad).check()
