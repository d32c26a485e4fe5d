"""Dashboard key c: the editor on the running config; hot changes go out as commands, cold ones wait."""

from __future__ import annotations

import dataclasses

from danlu.engine.control import events as ev
from danlu.engine.config.schema import Config
from danlu.tui.app import create_app
from danlu.tui.screens.editor_live import LiveEditorScreen

from .conftest import drain_commands, wait_for
from .fake_engine import run_started


def flat_preview(schedule, lr, spe, total):
    return [lr] * total


async def test_c_sends_hot_changes_and_lists_cold_ones(channel):
    channel.emit(dataclasses.replace(run_started(), config=Config().to_dict()))
    channel.emit(ev.StatusChanged("running", 0))
    app = create_app(channel)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.pump.state.run is not None, what="RunStarted")
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, LiveEditorScreen), what="live editor")
        screen = app.screen
        screen.query_one("LrPreview").preview_fn = flat_preview
        for path, value in (("optim.lr", "5e-4"), ("train.grad_clip", "0.5"), ("data.batch_size", "32")):
            screen.query_one("#f-" + path.replace(".", "-")).value = value
            await pilot.pause()
        await wait_for(pilot, lambda: screen._check_timer is None and "restart" in
                       str(screen.query_one("#editor-status").render()), what="hot/cold summary")
        status = str(screen.query_one("#editor-status").render())
        assert "hot: set_lr, grad_clip" in status and "needs a restart: data.batch_size" in status
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen.id == "dashboard", what="back on the dashboard")
        cmds = drain_commands(channel)
        assert [(c.kind, c.args) for c in cmds] == [
            ("set_lr", {"value": None, "factor": 0.5, "group": None, "mode": "rescale"}),
            ("set_hparam", {"name": "grad_clip", "value": 0.5, "group": None}),
        ]
