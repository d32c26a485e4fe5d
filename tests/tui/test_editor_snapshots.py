"""Screenshots of the launcher and both editor views at 100x30 (fixed clock, fixed files).

Review changes with the snapshot report before `pytest --snapshot-update`.
"""

from __future__ import annotations

import shutil

import pytest

from danlu.engine.config.schema import PACKAGED_CONFIGS
from danlu.tui.editor_app import create_editor_app, create_launcher_app

from .conftest import wait_for
from .test_launcher import NOW, alive, make_run

SIZE = (100, 30)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    shutil.copy(PACKAGED_CONFIGS / "default.yaml", tmp_path / "configs" / "exp.yaml")
    return tmp_path


def _quiet(app):
    app.notify = lambda *args, **kwargs: None  # toasts come and go on the wall clock
    return app


async def _editor_settled(pilot):
    screen = pilot.app.screen
    await wait_for(pilot, lambda: screen._check_timer is None, what="validation")
    preview = screen.query_one("LrPreview")
    await wait_for(pilot, lambda: not preview.busy and preview.shown_key is not None, timeout=60,
                   what="schedule preview")
    await pilot.pause()


def test_launcher(snap_compare, workdir):
    make_run(workdir, "exp-20260101-000000", state="finished", step=336, total_steps=336,
             best_val_loss=0.4123, updated=NOW - 3 * 3600, pid=1)
    make_run(workdir, "exp-20260101-010000", state="running", step=120, total_steps=336,
             best_val_loss=0.9, updated=NOW - 30, pid=4242)
    make_run(workdir, "exp-20251231-230000", state="running", step=57, total_steps=336,
             updated=NOW - 2 * 86400, pid=1)
    (workdir / "configs" / "broken.yaml").write_text("run:\n  seed: [1, 2\noptim: {lr: 1}\n")  # marked ✗
    app = _quiet(create_launcher_app(workdir, clock=lambda: NOW, alive=alive))

    async def settle(pilot):
        await wait_for(pilot, lambda: pilot.app.screen.query_one("#runs").row_count == 3, what="runs")
        await wait_for(pilot, lambda: pilot.app.screen.checks_done, what="configs checked")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=settle)


def test_editor_form(snap_compare, workdir):
    pytest.importorskip("torch")
    app = _quiet(create_editor_app("configs/exp.yaml"))

    async def run_before(pilot):
        await _editor_settled(pilot)
        seed = pilot.app.screen.query_one("#f-run-seed")
        seed.value = "-3"  # one invalid field, shown under it
        # The check is debounced and starts only once the change message is handled: wait for its result,
        # not for "no check pending", which holds before the change is seen too.
        await wait_for(pilot, lambda: "problem" in str(pilot.app.screen.query_one("#editor-status").render()),
                       what="the check to find the bad seed")
        await _editor_settled(pilot)
        for w in pilot.app.screen.query("Input"):
            w.cursor_blink = False  # a blinking cursor is caught on or off at random
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_editor_raw(snap_compare, workdir):
    pytest.importorskip("torch")
    app = _quiet(create_editor_app("configs/exp.yaml", view="raw"))

    async def run_before(pilot):
        await _editor_settled(pilot)
        editor = pilot.app.screen.query_one("#yaml-editor")
        editor.cursor_blink = False  # a blinking cursor is caught on or off at random
        editor.load_text(editor.text.replace("seed: 0", "seed: -3").replace("out_dir: runs", "out_dri: runs"))
        await pilot.pause()
        await _editor_settled(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_editor_find_at_80x24(snap_compare, workdir):
    """ctrl+f "warm": the section row, the find box, only the warmup keys, and the 80-column footer."""
    pytest.importorskip("torch")
    app = _quiet(create_editor_app("configs/exp.yaml"))

    async def run_before(pilot):
        await _editor_settled(pilot)
        await pilot.press("ctrl+f", *"warm")
        await wait_for(pilot, lambda: not pilot.app.screen.query_one("#row-optim-lr").display, what="filtered")
        for w in pilot.app.screen.query("Input"):
            w.cursor_blink = False
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
