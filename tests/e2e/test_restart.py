"""Restart with changes, end to end: the real engine, the live editor (c), a new run from the checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from danlu.engine.control.channel import Channel
from danlu.engine.loop.runner import start_engine
from danlu.tui.app import create_app
from danlu.tui.screens.editor_dialogs import ConfirmDialog
from danlu.tui.screens.editor_live import LiveEditorScreen
from danlu.tui.screens.quit_dialog import QuitDialog
from danlu.tui.widgets.event_log import EventLog

from ..tui.conftest import click, wait_for
from .test_dashboard_engine import ENDLESS, SIZE, T, engine_threads, running


def flat_preview(schedule, lr, spe, total):
    return [lr] * total


@pytest.mark.asyncio
async def test_restart_with_a_new_batch_size_continues_in_a_new_run(tiny_config):
    channel = Channel()
    cfg = tiny_config(ENDLESS)
    app = create_app(channel, lambda: start_engine(cfg, channel),
                     make_starter=lambda c, warm: (lambda: start_engine(c, channel, warm_start=warm)))
    async with app.run_test(size=SIZE) as pilot:
        old = await running(pilot, min_step=2)
        old_dir = old.run_dir
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, LiveEditorScreen), what="live editor")
        editor = app.screen
        editor.query_one("LrPreview").preview_fn = flat_preview
        editor.query_one("#f-data-batch_size").value = "8"
        await pilot.pause()
        await wait_for(pilot, lambda: editor._check_timer is None and "needs a restart: data.batch_size" in
                       str(editor.query_one("#editor-status").render()), what="cold change listed")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="restart confirm")
        await click(pilot, "#restart")
        await wait_for(pilot, lambda: app.engine_thread.trainer is not old, timeout=T, what="a new engine")
        new = app.engine_thread.trainer
        assert old.final_state == "stopped"
        parent_step = old.step
        assert (old_dir / "checkpoints" / "last.pt").is_file()
        await wait_for(pilot, lambda: app.pump.state.run is not None and new.step > parent_step + 1,
                       timeout=T, what="steps beyond the parent's")
        assert new.run_dir != old_dir
        saved = yaml.safe_load((Path(new.run_dir) / "config.yaml").read_text())
        assert saved["run"]["parent"] == str(old_dir)
        assert saved["run"]["parent_step"] == parent_step
        assert saved["data"]["batch_size"] == 8
        assert app.pump.state.run.run_dir == str(new.run_dir)
        log = app.screen.query_one(EventLog).lines_text
        assert any(f"restarted from {old_dir.name} step {parent_step} with: data.batch_size 16 → 8" in line
                   for line in log), log
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuitDialog), what="quit dialog")
        await pilot.press("enter")
        await wait_for(pilot, lambda: not app.is_running, timeout=T, what="the app to exit")
    assert not engine_threads()
    assert new.final_state == "stopped"
