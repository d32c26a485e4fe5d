"""The editor's LR range test (F4): runs on the edited config in a worker, and its suggestion goes
into optim.lr (comments kept, not saved until ctrl+s) only when asked."""

from __future__ import annotations

import pytest
from textual.widgets import Button, Input, Static

from danlu.tui.editor_app import create_editor_app
from danlu.tui.screens.editor_lr_find import EditorLrFind

from .conftest import click, wait_for

CONFIG = """\
# tiny, for the test
run: {name: t, device: cpu, seed: 0}
data:
  name: shapes
  batch_size: 16
  num_workers: 0
  args: {size: 256, image_size: 16}
model:
  name: small_cnn
  args: {width: 8}
optim:
  name: sgd
  lr: 0.05     # my guess
  momentum: 0.9
"""


def flat_preview(schedule, lr, spe, total):
    return [lr] * total


@pytest.mark.asyncio
@pytest.mark.parametrize("view", ["form", "raw"])
async def test_f4_runs_the_range_test_and_puts_the_suggestion_into_optim_lr(tmp_path, monkeypatch, view):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "exp.yaml"
    path.write_text(CONFIG)
    app = create_editor_app(str(path), preview_fn=flat_preview, view=view)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.screen.id == "editor", what="the editor", timeout=20)
        await pilot.press("f4")
        await wait_for(pilot, lambda: isinstance(app.screen, EditorLrFind), what="the dialog", timeout=20)
        dialog = app.screen
        dialog.query_one("#elf-sweep", Input).value = "1e-4 1 12"
        await click(pilot, "#elf-start")
        use = dialog.query_one("#elf-use", Button)
        await wait_for(pilot, lambda: use.display, timeout=60, what="the result")
        assert "rule: steepest descent" in str(dialog.query_one("#elf-summary", Static).render())
        lr = float(f"{dialog.suggestion:.3g}")
        await pilot.pause()
        await click(pilot, "#elf-use")
        await wait_for(pilot, lambda: app.screen.id == "editor", what="back in the editor", timeout=20)
        editor = app.screen
        await wait_for(pilot, lambda: f"lr: {lr:g}" in editor.text or f"lr: {lr}" in editor.text, what="the text")
        assert "# my guess" in editor.text and "# tiny, for the test" in editor.text
        if view == "raw":
            assert editor.query_one("YamlView").editor.text == editor.text
            return
        await wait_for(pilot, lambda: editor.query_one("#f-optim-lr").value in (f"{lr:g}", str(lr)),
                       what="the form shows the new lr", timeout=20)
        assert path.read_text() == CONFIG  # nothing saved until ctrl+s


@pytest.mark.asyncio
async def test_cancel_leaves_the_config_alone_and_a_bad_sweep_is_explained(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "exp.yaml"
    path.write_text(CONFIG)
    app = create_editor_app(str(path), preview_fn=flat_preview)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.screen.id == "editor", what="the editor", timeout=20)
        await pilot.press("f4")
        await wait_for(pilot, lambda: isinstance(app.screen, EditorLrFind), what="the dialog", timeout=20)
        app.screen.query_one("#elf-sweep", Input).value = "10 1 100"
        await click(pilot, "#elf-start")
        await pilot.pause()
        assert "0 < START < END" in str(app.screen.query_one("#elf-error", Static).render())
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen.id == "editor", what="back in the editor", timeout=20)
        assert app.screen.text == CONFIG
