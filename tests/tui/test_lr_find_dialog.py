"""The dashboard's LR range test (f): memory stated first, refused when it cannot fit, the curve,
Apply as a normal set_lr (rescale) and the run resumed; Cancel changes nothing."""

from __future__ import annotations

import math

import pytest
from textual.widgets import Button, Static

from danlu.engine.control import events as ev
from danlu.tui.app import create_app
from danlu.tui.screens.lr_find_dialog import LrFindDialog, memory_text, parse_sweep

from .conftest import click, drain_commands, wait_for
from .fake_engine import emit_run

SIZE = (120, 40)
MB = 1 << 20


def footprint(fits=True):
    return {"weights": 40 * MB, "grads": 40 * MB, "optimizer": 80 * MB, "optimizer_estimated": False,
            "total": 160 * MB, "free": (1000 if fits else 100) * MB, "device": "cuda", "fits": fits}


def done(step=600):
    lrs = [1e-6 * 10 ** (6 * i / 49) for i in range(50)]
    losses = [2.0 - 1.5 / (1 + math.exp(-(math.log10(lr) + 3) * 4)) for lr in lrs]
    return ev.LrFindDone(step=step, lrs=lrs, losses=losses, smoothed=losses, suggestion=1e-3, min_over_10=3e-3,
                         rule="steepest descent of the loss", stopped="", path="lr_find/step-600.json",
                         memory=footprint())


async def _sent(pilot, channel) -> list:
    """The lr_find commands the dialog sent, once it has sent one."""
    seen: list = []
    await wait_for(pilot, lambda: seen.extend(c for c in drain_commands(channel) if c.kind == ev.CommandKind.LR_FIND)
                   or seen, what="an lr_find command", timeout=20)
    return seen


async def _open(pilot, app, channel, fits=True):
    await wait_for(pilot, lambda: app.pump.state.step == 600, what="step 600", timeout=20)
    assert "LR find (f)" in [c.title for c in app.get_system_commands(app.screen)]  # in the palette too
    await pilot.press("f")
    await wait_for(pilot, lambda: isinstance(app.screen, LrFindDialog), what="the dialog", timeout=20)
    check = await _sent(pilot, channel)
    assert len(check) == 1 and check[0].args["check"] is True  # nothing runs before the person agrees
    channel.emit(ev.CommandApplied(check[0].id, "lr_find", 600, None, footprint(fits), "…"))
    memory = app.screen.query_one("#lrf-memory", Static)
    await wait_for(pilot, lambda: "free on cuda" in str(memory.render()), what="the memory", timeout=20)
    return str(memory.render())


@pytest.mark.asyncio
async def test_the_memory_is_stated_then_the_curve_and_apply_sends_set_lr_and_resumes(channel):
    emit_run(channel, steps=600)
    app = create_app(channel)
    async with app.run_test(size=SIZE) as pilot:
        text = await _open(pilot, app, channel)
        assert "160.0 MiB" in text and "1000.0 MiB" in text and "it fits" in text
        await click(pilot, "#lrf-start")
        run = await _sent(pilot, channel)
        assert len(run) == 1 and not run[0].args["check"] and run[0].args["steps"] == 100
        channel.emit(ev.StatusChanged("paused", 600, "LR range test on a copy of the model at step 600"))
        channel.emit(done())
        channel.emit(ev.CommandApplied(run[0].id, "lr_find", 600, None, 1e-3, "suggests lr 0.001"))
        plot = app.screen.query_one("#lrf-plot", Static)
        await wait_for(pilot, lambda: "1e-06" in str(plot.render()), what="the curve", timeout=20)
        assert "^" in str(plot.render()) and "v" in str(plot.render())  # the suggestion and min/10 marked
        summary = str(app.screen.query_one("#lrf-summary", Static).render())
        assert "suggested lr 0.001" in summary and "min/10 0.003" in summary
        assert "rule: steepest descent" in summary and "lr_find/step-600.json" in summary
        assert "Apply lr 0.001" in str(app.screen.query_one("#lrf-apply", Button).label)
        await click(pilot, "#lrf-apply")
        await wait_for(pilot, lambda: not isinstance(app.screen, LrFindDialog), what="the dialog to close", timeout=20)
        sent = drain_commands(channel)
        assert [c.kind for c in sent] == [ev.CommandKind.SET_LR, ev.CommandKind.RESUME]
        assert sent[0].args["value"] == 1e-3 and sent[0].args["mode"] == ev.LrMode.RESCALE


@pytest.mark.asyncio
async def test_a_test_that_cannot_fit_is_refused_and_cancel_sends_nothing(channel):
    emit_run(channel, steps=600)
    app = create_app(channel)
    async with app.run_test(size=SIZE) as pilot:
        text = await _open(pilot, app, channel, fits=False)
        assert "does NOT fit" in text and "refused" in text
        assert app.screen.query_one("#lrf-start", Button).disabled
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, LrFindDialog), what="the dialog to close", timeout=20)
        assert drain_commands(channel) == []


@pytest.mark.parametrize("text, ok", [("1e-7 10 100", True), ("1e-5, 1, 20", True), ("1 0.1 100", False),
                                      ("1e-7 10", False), ("a b c", False), ("1e-7 10 5", False)])
def test_the_sweep_field_is_checked(text, ok):
    if ok:
        assert parse_sweep(text)[2] >= 10
    else:
        with pytest.raises(ValueError, match="START"):
            parse_sweep(text)


def test_small_memory_is_stated_in_kib_not_as_zero_mib():
    """A 15k-parameter model: 60 KiB of weights, not '0.0 MiB'; large sizes stay in MiB and GiB."""
    text = memory_text({"weights": 62_400, "grads": 62_400, "optimizer": 124_800, "total": 249_600,
                        "free": 3 * (1 << 30), "device": "cpu", "fits": True})
    assert "0.0 MiB" not in text
    assert "weights 60.9 KiB + grads 60.9 KiB + optimizer state 121.9 KiB = [b]243.8 KiB[/b]" in text
    assert "free on cpu: 3.00 GiB" in text
    assert "unknown" in memory_text({"weights": None, "fits": False})
