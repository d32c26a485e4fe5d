"""The profiler from the dashboard: p asks how many steps, the result comes back as a dialog."""

from __future__ import annotations

import io

import pytest
from textual.widgets import Input, Static

from danlu.engine.control import events as ev
from danlu.tui.app import create_app
from danlu.tui.describe import describe
from danlu.tui.screens.profile_dialog import ProfileDialog
from danlu.tui.screens.profile_result import ProfileResult
from danlu.tui.widgets.event_log import EventLog

from .conftest import drain_commands, wait_for
from .fake_engine import FakeEngine, emit_run, profile_done

SIZE = (120, 40)


def text_of(screen, selector: str) -> str:
    """The text a Static shows, a rich Table drawn as the screen draws it."""
    from rich.console import Console
    widget = screen.query_one(selector, Static)
    console = Console(width=widget.size.width or 100, record=True, file=io.StringIO())
    console.print(widget.content)
    return console.export_text()


def result_shown(app) -> bool:
    """The result dialog is up and composed (it is the screen a moment before its table is mounted)."""
    return isinstance(app.screen, ProfileResult) and bool(app.screen.query("#profile-table"))


@pytest.mark.asyncio
@pytest.mark.parametrize("size", [SIZE, (80, 24)])
async def test_p_profiles_n_steps_and_shows_the_top_ops(channel, size):
    engine = FakeEngine(channel, step=41)
    app = create_app(channel, engine.start)
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: app.pump.state.run is not None, what="RunStarted")
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, ProfileDialog), what="profile dialog")
        assert app.screen.query_one("#profile-steps", Input).value == "5"  # the default
        await pilot.press(*"12", "enter")  # the default is selected: typing replaces it
        await wait_for(pilot, lambda: result_shown(app), what="the result")
        assert [(c.kind, c.args) for c in engine.received] == [("profile", {"steps": 12})]
        result = app.screen
        assert "steps 43-54" in text_of(result, "#profile-summary")
        assert "waiting for data: 12%" in text_of(result, "#profile-summary")
        table = text_of(result, "#profile-table")
        assert "aten::convolution_backward" in table and "self CUDA" in table and "5.2 ms" in table
        # relative to the run, as the status line shows the run directory
        assert "trace: profile/steps-43-54.json" in text_of(result, "#profile-trace")
        close = result.query_one("#profile-close")  # on screen, not scrolled or cut away
        assert result.get_widget_at(close.region.x + 1, close.region.y)[0] is close
        dashboard = next(s for s in app.screen_stack if s.id == "dashboard")
        log = dashboard.query_one(EventLog).lines_text
        assert any("profiled steps 43-54" in line and "profile/steps-43-54.json" in line for line in log)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen.id == "dashboard", what="closed")


@pytest.mark.asyncio
@pytest.mark.parametrize("typed, words", [("0", "1 to 1000"), ("5000", "1 to 1000"), ("abc", "not a whole number"),
                                          ("", "how many steps")])
async def test_bad_step_counts_are_refused_in_the_dialog(channel, typed, words):
    emit_run(channel, steps=100)
    app = create_app(channel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.pump.state.step == 100, what="step 100")
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, ProfileDialog), what="profile dialog")
        app.screen.query_one("#profile-steps", Input).value = typed
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ProfileDialog)
        assert words in text_of(app.screen, "#profile-error")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen.id == "dashboard", what="cancelled")
        assert drain_commands(channel) == []


@pytest.mark.asyncio
async def test_a_profile_from_the_config_shows_its_result_too(channel):
    emit_run(channel, steps=100)
    gpu = profile_done(21, 3)  # as monitor.profile_steps: [21, 3] reports it, on a CPU run
    fields = {k: v for k, v in ev.to_dict(gpu).items() if k != "type"}
    channel.emit(ev.ProfileDone(**{**fields, "activities": ["cpu"], "data_share": 0.45,
                                   "top_ops": [{**op, "self_cuda_us": None} for op in gpu.top_ops]}))
    app = create_app(channel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: result_shown(app), timeout=10, what="the result")
        table = text_of(app.screen, "#profile-table")
        assert "self CPU" in table and "self CUDA" not in table
        assert "the loader is the bottleneck" in text_of(app.screen, "#profile-summary")


def test_the_log_line_says_where_the_time_went():
    e = profile_done(3, 3)
    level, line = describe(e, run_dir="runs/demo-20250101-000000")
    assert level == "info" and line.startswith("step 5: profiled steps 3-5: top aten::convolution_backward")
    assert "data loading 12% of step time" in line and line.endswith("trace profile/steps-3-5.json")


@pytest.mark.asyncio
async def test_the_palette_lists_profile(channel):
    app = create_app(channel)
    async with app.run_test(size=SIZE):
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Profile (p)" in titles
