"""The config editor: form and raw views of one text, comments kept, invalid configs never written silently."""

from __future__ import annotations

import shutil

import pytest

from danlu.engine.config.schema import PACKAGED_CONFIGS
from danlu.engine.config.files import load_config, parse_yaml
from danlu.tui.editor_model import check, line_of, problem_path
from danlu.tui.editor_app import Outcome, create_editor_app
from danlu.tui.screens.editor_dialogs import ConfirmDialog, DiffDialog
from danlu.tui.widgets.config_form import FieldRow
from danlu.tui.widgets.yaml_view import YamlEditor

from .conftest import click, wait_for

DEFAULT = (PACKAGED_CONFIGS / "default.yaml").read_text()


def flat_preview(schedule, lr, spe, total):
    """Stands in for engine.schedule.preview: no torch in the fast tests."""
    return [lr] * total


@pytest.fixture
def cfg_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    p = tmp_path / "configs" / "exp.yaml"
    shutil.copy(PACKAGED_CONFIGS / "default.yaml", p)
    return p


def comment_lines(text: str) -> list[str]:
    return [line.split("#", 1)[1] for line in text.splitlines() if "#" in line]


# --- the editor's model, no UI ---------------------------------------------------------------

def test_problems_point_at_their_lines():
    text = DEFAULT.replace("lr: 0.003", "lr: -1").replace("keep_last: 3", "keep_lats: 3")
    c = check(text)
    lines = text.splitlines()
    by_path = {p.path: p for p in c.problems}
    assert lines[by_path["optim.lr"].line].strip() == "lr: -1"
    assert lines[by_path["train.keep_lats"].line].strip() == "keep_lats: 3"
    assert problem_path("unknown key optim.learnig_rate, did you mean optim.lr?") == "optim.learnig_rate"
    assert line_of(text, "optim.betas[1]") == line_of(text, "optim.betas")
    twice = check(DEFAULT + "optim:\n  lr: 0.1\n")
    assert twice.config is None and "duplicate key 'optim'" in twice.problems[0].message
    assert twice.problems[0].line == len(DEFAULT.splitlines())  # the second `optim:`, 0-based
    syntax = check("run:\n  name: [\n")
    assert syntax.raw is None and syntax.problems[0].line is not None


# --- the editor ------------------------------------------------------------------------

async def _checked(pilot):
    """Wait until the pending (debounced) validation has run."""
    await wait_for(pilot, lambda: pilot.app.screen._check_timer is None, what="validation")
    await pilot.pause()


async def _set_input(pilot, path: str, value: str):
    inp = pilot.app.screen.query_one("#f-" + path.replace(".", "-"))
    inp.value = value
    await pilot.pause()
    await _checked(pilot)


async def test_form_round_trip_keeps_comments(cfg_file):
    before = cfg_file.read_text()
    app = create_editor_app(str(cfg_file), preview_fn=flat_preview)
    async with app.run_test(size=(100, 30)) as pilot:
        await _set_input(pilot, "optim.lr", "5e-4")
        await _set_input(pilot, "train.epochs", "6")
        assert app.screen.dirty
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, DiffDialog), what="diff dialog")
        assert "-  lr: 0.003" in app.screen.diff and "+  lr: 0.0005" in app.screen.diff
        await pilot.press("enter")  # Write is focused
        await wait_for(pilot, lambda: cfg_file.read_text() != before, what="file written")
        await wait_for(pilot, lambda: not app.screen.dirty, what="clean")
    after = cfg_file.read_text()
    assert comment_lines(after) == comment_lines(before)
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines()) if a != b]
    assert changed == [("  lr: 0.003", "  lr: 0.0005"), ("  epochs: 4", "  epochs: 6")]
    cfg, orig = load_config(str(cfg_file)), load_config(str(PACKAGED_CONFIGS / "default.yaml"))
    assert cfg.optim.lr == 0.0005 and cfg.train.epochs == 6
    cfg.optim.lr, cfg.train.epochs = orig.optim.lr, orig.train.epochs
    assert cfg.to_dict() == orig.to_dict()


async def test_invalid_value_shows_everywhere_and_blocks_save(cfg_file):
    before = cfg_file.read_text()
    app = create_editor_app(str(cfg_file), preview_fn=flat_preview)
    async with app.run_test(size=(100, 30)) as pilot:
        await _set_input(pilot, "optim.lr", "-1")
        row = app.screen.query_one("#row-optim-lr", FieldRow)
        assert row.has_class("-invalid")
        assert "optim.lr: must be > 0, got -1" in str(row.query_one(".field-error").render())
        await pilot.press("f2")
        await wait_for(pilot, lambda: app.screen.view == "raw", what="raw view")
        editor = app.screen.query_one(YamlEditor)
        lr_line = next(i for i, line in enumerate(editor.text.splitlines()) if line.strip() == "lr: -1")
        assert editor.line_problems[lr_line].startswith("optim.lr: must be > 0")
        assert "L28 ✗ optim.lr" in str(app.screen.query_one("#raw-problems").render())
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="confirm dialog")
        await pilot.press("enter")  # "Keep editing" is focused: a plain Enter never writes
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmDialog), what="dialog closed")
        assert cfg_file.read_text() == before
        # the explicit choice writes it
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="confirm dialog")
        await click(pilot, "#save-anyway")
        await wait_for(pilot, lambda: isinstance(app.screen, DiffDialog), what="diff dialog")
        await pilot.press("enter")
        await wait_for(pilot, lambda: "lr: -1" in cfg_file.read_text(), what="written on request")


async def test_raw_edit_is_written_as_is(cfg_file):
    app = create_editor_app(str(cfg_file), preview_fn=flat_preview, view="raw")
    async with app.run_test(size=(100, 30)) as pilot:
        editor = app.screen.query_one(YamlEditor)
        new = editor.text.replace("  lr: 0.003\n", "  lr: 0.001   # halved, see notes\n") + "# trailing note\n"
        editor.load_text(new)
        await pilot.pause()
        await _checked(pilot)
        assert app.screen.checked.ok
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, DiffDialog), what="diff dialog")
        await pilot.press("enter")
        await wait_for(pilot, lambda: cfg_file.read_text() == new, what="written as is")


async def test_switching_optimizer_rerenders_its_fields(cfg_file):
    app = create_editor_app(str(cfg_file), preview_fn=flat_preview)
    async with app.run_test(size=(100, 30)) as pilot:
        assert app.screen.query("#row-optim-betas")
        app.screen.query_one("#f-optim-name").value = "sgd"
        await wait_for(pilot, lambda: bool(app.screen.query("#row-optim-momentum")), what="sgd's fields")
        assert not app.screen.query("#row-optim-betas")
        assert "betas" not in app.screen.text and "name: sgd" in app.screen.text
        assert app.screen.checked.ok
        # and its own field edits like any other
        await _set_input(pilot, "optim.momentum", "0.9")
        assert parse_yaml(app.screen.text)["optim"]["momentum"] == 0.9


async def test_run_from_the_editor(cfg_file):
    app = create_editor_app(str(cfg_file), preview_fn=flat_preview)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.return_value is not None, what="exit")
    assert app.return_value == Outcome("run", str(cfg_file))


async def test_quit_with_unsaved_changes_asks(cfg_file):
    app = create_editor_app(str(cfg_file), preview_fn=flat_preview)
    async with app.run_test(size=(100, 30)) as pilot:
        await _set_input(pilot, "run.seed", "7")
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="unsaved dialog")
        await click(pilot, "#discard")
        await wait_for(pilot, lambda: not app.is_running, what="exit")
    assert "seed: 0" in cfg_file.read_text()


async def test_schedule_preview_uses_the_engine(cfg_file):
    pytest.importorskip("torch")
    app = create_editor_app(str(cfg_file))
    async with app.run_test(size=(100, 30)) as pilot:
        preview = app.screen.query_one("LrPreview")
        await wait_for(pilot, lambda: preview.shown_key is not None, timeout=60, what="preview")
        caption = str(preview.query_one("#lr-caption").render())
        assert "336 steps (84/epoch)" in caption and "peak 0.003" in caption
        await _set_input(pilot, "schedule.warmup_steps", "100")
        await wait_for(pilot, lambda: not preview.busy and "warmup 100" in str(preview.query_one("#lr-caption").render()),
                       timeout=60, what="new preview")


async def test_escape_closes_the_raw_view_through_the_unsaved_question(cfg_file):
    app = create_editor_app(str(cfg_file), preview_fn=flat_preview, view="raw")
    async with app.run_test(size=(100, 30)) as pilot:
        editor = app.screen.query_one(YamlEditor)
        assert editor.has_focus
        editor.cursor_location = (0, 0)
        await pilot.press("x")  # typing still goes into the text, once
        await wait_for(pilot, lambda: app.screen.text.startswith("x#"), what="typed")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="unsaved dialog")
        await pilot.press("escape")  # the dialog's own escape: keep editing
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmDialog), what="dialog closed")
        assert app.is_running and app.screen.view == "raw" and app.screen.text.startswith("x#")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="unsaved dialog again")
        await click(pilot, "#discard")
        await wait_for(pilot, lambda: not app.is_running, what="exit")
    assert cfg_file.read_text().startswith("#")


async def test_escape_closes_an_unchanged_raw_view_at_once(cfg_file):
    app = create_editor_app(str(cfg_file), preview_fn=flat_preview, view="raw")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("escape")
        await wait_for(pilot, lambda: not app.is_running, what="exit")
    assert app.return_value is None


# --- finding keys and jumping between sections --------------------------------------------

def _shown_rows(screen) -> list[str]:
    return [r.path for r in screen.query(FieldRow) if r.display]


def _in_view(screen, widget) -> bool:
    form = screen.query_one("#form")
    return bool(widget.region) and form.region.contains_region(widget.region)


def _footer_keys(screen) -> list[str]:
    from textual.widgets._footer import FooterKey
    return [k.key for k in screen.query(FooterKey)]


@pytest.mark.parametrize("size", [(80, 24), (100, 30)])
async def test_find_narrows_the_form_and_goes_to_the_key(cfg_file, size):
    app = create_editor_app(str(cfg_file), preview_fn=flat_preview)
    async with app.run_test(size=size) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: "ctrl+f" in _footer_keys(screen), what="find in the footer")
        await pilot.press("ctrl+f", *"warm")
        await wait_for(pilot, lambda: _shown_rows(screen) == ["schedule.warmup_steps",
                                                               "schedule.warmup_start_factor"], what="filtered")
        links = {link.section: link for link in screen.query("SectionLink")}
        assert not links["schedule"].has_class("-empty") and links["optim"].has_class("-empty")
        await pilot.press("enter")  # to the first key found, its value selected: typing replaces it
        target = screen.query_one("#f-schedule-warmup_steps")
        await wait_for(pilot, lambda: target.has_focus, what="first match focused")
        await pilot.press(*"100")
        await _checked(pilot)
        assert target.value == "100" and parse_yaml(screen.text)["schedule"]["warmup_steps"] == 100
        await pilot.press("escape")  # every key again, still on the one found, in view
        await wait_for(pilot, lambda: len(_shown_rows(screen)) > 30, what="unfiltered")
        await wait_for(pilot, lambda: _in_view(screen, target), what="found key in view")
        assert target.has_focus and isinstance(app.screen, type(screen))
        # a word of any part of the dotted name; several words narrow further; none found says so
        await pilot.press("ctrl+f", *"clip")
        await wait_for(pilot, lambda: _shown_rows(screen) == ["train.grad_clip"], what="clip")
        screen.query_one("#form-find").value = "optim lr"
        await wait_for(pilot, lambda: _shown_rows(screen) == ["optim.lr"], what="optim lr")
        screen.query_one("#form-find").value = "nosuchkey"
        await wait_for(pilot, lambda: screen.query_one("#form-nomatch").display, what="no match note")
        await pilot.press("escape")  # Esc in the box: back to the key you were on
        await wait_for(pilot, lambda: target.has_focus and len(_shown_rows(screen)) > 30, what="back")
        assert screen.query_one("#form-find").value == ""


@pytest.mark.parametrize("size", [(80, 24), (100, 30)])
async def test_sections_jump_by_key_and_by_click(cfg_file, size):
    app = create_editor_app(str(cfg_file), preview_fn=flat_preview)
    async with app.run_test(size=size) as pilot:
        screen = app.screen
        nav = screen.query_one("FormNav")
        await wait_for(pilot, lambda: nav.current == "run", what="run lit")
        assert "ctrl+down" in _footer_keys(screen)

        def at(section: str) -> bool:
            title = screen.query_one(f"#title-{section}")
            row = next(r for r in screen.query(FieldRow) if r.path.startswith(section + "."))
            return (nav.current == section and row.query_one(".field-control").has_focus
                    and _in_view(screen, title))

        await pilot.press("ctrl+down", "ctrl+down", "ctrl+down")  # typed ahead of the focus
        await wait_for(pilot, lambda: at("optim"), what="optim")
        await pilot.press("ctrl+up")
        await wait_for(pilot, lambda: at("model"), what="back to model")
        await click(pilot, "#nav-monitor")
        await wait_for(pilot, lambda: nav.current == "monitor" and screen.focused is not None
                       and screen.focused.id.startswith("f-monitor-"), what="monitor by click")
        assert _in_view(screen, screen.focused)
        await pilot.press("ctrl+down")  # wraps around
        await wait_for(pilot, lambda: at("run"), what="run again")
        # the raw view has no sections: the keys leave the footer and ctrl+f stays the editor's
        await pilot.press("f2")
        await wait_for(pilot, lambda: screen.view == "raw" and "ctrl+f" not in _footer_keys(screen),
                       what="raw footer")
        assert not nav.display


async def test_keys_left_out_of_a_narrow_footer_are_in_the_palette(cfg_file):
    app = create_editor_app(str(cfg_file), preview_fn=flat_preview)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: "escape" in _footer_keys(screen), what="footer")
        shown = _footer_keys(screen)
        titles = [c.title for c in app.get_system_commands(screen)]
        for b in screen.BINDINGS:
            if b.description:
                first = b.key.split(",")[0]
                assert first in shown or any(t.startswith(b.description + " (") for t in titles), b.key
        assert "f8" not in shown and "Next problem (f8)" in titles  # what 80 columns leave out
        assert {"f2", "ctrl+f", "ctrl+down", "ctrl+s", "escape", "ctrl+p"} <= set(shown)
