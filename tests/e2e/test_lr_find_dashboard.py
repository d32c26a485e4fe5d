"""Key f with the real Trainer: the memory from the real tensors, the test on a copy while the run
waits, the file in the run directory, Apply changing the run's LR, and the run going on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.widgets import Button, Input, Static

from danlu.tui.format import nbytes
from danlu.tui.screens.lr_find_dialog import LrFindDialog

from ..tui.conftest import click, wait_for
from .test_dashboard_engine import ENDLESS, SIZE, T, real_app, running


@pytest.mark.asyncio
async def test_f_runs_the_range_test_on_a_copy_and_apply_sets_the_runs_lr(tiny_config):
    # A run at a tiny LR has barely learnt when f comes (at step 2 or, on a loaded machine, step 2000),
    # so the sweep sees the loss fall before it climbs, and always has a suggestion to apply.
    app = real_app(tiny_config({**ENDLESS, "optim": {"lr": 1e-6}}))
    async with app.run_test(size=SIZE) as pilot:
        trainer = await running(pilot, min_step=2)
        await pilot.press("f")
        await wait_for(pilot, lambda: isinstance(app.screen, LrFindDialog), what="the dialog")
        dialog = app.screen
        start = dialog.query_one("#lrf-start", Button)
        await wait_for(pilot, lambda: not start.disabled, timeout=T, what="the memory check")
        n = sum(p.numel() for p in trainer.model.parameters())
        memory = str(dialog.query_one("#lrf-memory", Static).render())
        assert f"grads {nbytes(n * 4)}" in memory and " 0.0 MiB" not in memory  # fp32 grads: 4 bytes a parameter
        dialog.query_one("#lrf-sweep", Input).value = "1e-4 3 24"
        await click(pilot, "#lrf-start")
        apply = dialog.query_one("#lrf-apply", Button)
        await wait_for(pilot, lambda: apply.display, timeout=T, what="the result")
        res = app.pump.state.lr_find
        assert app.pump.state.state == "paused" and trainer.step == res.step  # the run waited at that step
        saved = json.loads((Path(trainer.run_dir) / res.path).read_text())
        assert saved["suggestion"] == res.suggestion and saved["step"] == res.step
        await pilot.pause()
        await click(pilot, "#lrf-apply")
        await wait_for(pilot, lambda: trainer.step > res.step + 2, timeout=T, what="steps after Apply")
        assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(res.suggestion)
