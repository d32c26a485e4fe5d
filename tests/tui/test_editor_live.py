"""Dashboard key c: the editor on the running config; hot changes go out as commands, cold ones wait."""

from __future__ import annotations

import dataclasses

from danlu.engine.control import events as ev
from danlu.engine.config.schema import Config
from danlu.tui.app import create_app
from danlu.tui.screens.editor_live import LiveEditorScreen

from .conftest import click, drain_commands, wait_for
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


async def test_escape_with_edits_asks_and_the_status_names_the_run(channel):
    from danlu.tui.screens.editor_dialogs import ConfirmDialog
    cfg = Config().to_dict()
    cfg["run"]["name"] = "demo"
    channel.emit(dataclasses.replace(run_started(), config=cfg))
    channel.emit(ev.StatusChanged("running", 0))
    app = create_app(channel)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.pump.state.run is not None, what="RunStarted")
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, LiveEditorScreen), what="live editor")
        screen = app.screen
        screen.query_one("LrPreview").preview_fn = flat_preview
        status = lambda: str(screen.query_one("#editor-status").render())  # noqa: E731
        await wait_for(pilot, lambda: "run demo · runs/demo-20250101-000000" in status(), what="run named")
        assert "untitled" not in status()
        # the form's find and section keys work here too, and every key is in the palette
        titles = [c.title for c in app.get_system_commands(screen)]
        assert "Apply hot changes (ctrl+s)" in titles and "Find (ctrl+f)" in titles
        await pilot.press("ctrl+f", *"clip")
        await wait_for(pilot, lambda: [r.path for r in screen.query("FieldRow") if r.display] == ["train.grad_clip"],
                       what="find in the live editor")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not screen.query_one("#form-find").value, what="find closed")
        assert app.screen is screen  # Esc closed the find, not the editor
        screen.query_one("#f-optim-lr").value = "5e-4"
        await wait_for(pilot, lambda: screen._check_timer is None and "● modified" in status()
                       and "hot: set_lr" in status(), what="edit checked")
        assert status().startswith("run demo · runs/demo-20250101-000000 ● modified")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="discard question")
        assert "run demo" in str(app.screen.message)
        await pilot.press("enter")  # Keep editing is focused: Enter never drops edits
        await wait_for(pilot, lambda: app.screen is screen, what="back in the editor")
        assert screen.query_one("#f-optim-lr").value == "5e-4"
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="discard question again")
        await click(pilot, "#discard")
        await wait_for(pilot, lambda: app.screen.id == "dashboard", what="dashboard")
        assert drain_commands(channel) == []
        # unchanged: Esc leaves at once
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, LiveEditorScreen), what="live editor again")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen.id == "dashboard", what="closed without a question")


async def _restart_dialog(pilot, app, channel, edits):
    from danlu.tui.screens.editor_dialogs import ConfirmDialog
    channel.emit(dataclasses.replace(run_started(), config=Config().to_dict()))
    channel.emit(ev.StatusChanged("running", 0))
    await wait_for(pilot, lambda: app.pump.state.run is not None, what="RunStarted")
    await pilot.press("c")
    await wait_for(pilot, lambda: isinstance(app.screen, LiveEditorScreen), what="live editor")
    screen = app.screen
    screen.query_one("LrPreview").preview_fn = flat_preview
    for path, value in edits:
        screen.query_one("#f-" + path.replace(".", "-")).value = value
        await pilot.pause()
    await wait_for(pilot, lambda: screen._check_timer is None and "restart" in
                   str(screen.query_one("#editor-status").render()), what="cold change seen")
    await pilot.press("ctrl+r")
    await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="restart dialog")
    return app.screen


async def test_a_restart_that_changes_the_batch_offers_linear_lr_scaling_only_as_a_choice(channel):
    base = Config()
    b = base.data.batch_size
    app = create_app(channel)
    seen = []
    app.restart_with = lambda config, changes: seen.append((config, changes)) or True
    async with app.run_test(size=(120, 40)) as pilot:
        dialog = await _restart_dialog(pilot, app, channel, [("data.batch_size", str(2 * b))])
        assert "linear scaling rule" in dialog.message and f"{base.optim.lr:g} → {2 * base.optim.lr:g}" in dialog.message
        assert [bt[0] for bt in dialog.buttons] == ["cancel", "restart-scaled", "restart"]
        await click(pilot, "#restart-scaled")
        await wait_for(pilot, lambda: seen, what="the restart")
    config, changes = seen[0]
    assert config.data.batch_size == 2 * b and config.optim.lr == 2 * base.optim.lr
    assert any("linear scaling" in c for c in changes)


async def test_a_plain_restart_keeps_the_lr_and_no_offer_when_the_lr_was_set(channel):
    base = Config()
    b = base.data.batch_size
    app = create_app(channel)
    seen = []
    app.restart_with = lambda config, changes: seen.append((config, changes)) or True
    async with app.run_test(size=(120, 40)) as pilot:
        await _restart_dialog(pilot, app, channel, [("data.batch_size", str(b // 2))])
        await click(pilot, "#restart")
        await wait_for(pilot, lambda: seen, what="the restart")
    assert seen[0][0].optim.lr == base.optim.lr and seen[0][0].data.batch_size == b // 2  # never silently
    from danlu.tui.screens.editor_live import lr_scaling
    set_too = dataclasses.replace(base, data=dataclasses.replace(base.data, batch_size=2 * b),
                                  optim=dataclasses.replace(base.optim, lr=1e-4))
    assert lr_scaling(base, set_too) is None and lr_scaling(base, base) is None
    accum = dataclasses.replace(base, train=dataclasses.replace(base.train, grad_accum=4))
    assert lr_scaling(base, accum) == (4.0, float(f"{base.optim.lr * 4:.4g}"))
