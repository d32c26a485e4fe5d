"""Screenshots from a deterministic stream (time comes from events, not the clock).

Review changes with the snapshot report before `pytest --snapshot-update`.
"""

from __future__ import annotations

import pytest

from danlu.engine.control.channel import Channel
from danlu.tui.app import create_app

from .conftest import wait_for
from .fake_engine import emit_run


def _app(final: str | None = None):
    ch = Channel()
    emit_run(ch, steps=1200, final=final)
    app = create_app(ch)
    # Toasts come and go on the wall clock; they are tested through app.toasts instead.
    app.notify = lambda *args, **kwargs: None
    return app, ch


async def _settle(pilot, ch):
    app = pilot.app
    await wait_for(pilot, lambda: ch.pending() == 0 and app.pump.state.version
                   == app.screen._shown_version, what="stream drained and drawn")
    await pilot.pause()


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_running_dashboard(snap_compare, size):
    app, ch = _app()
    assert snap_compare(app, terminal_size=size, run_before=lambda p: _settle(p, ch))


def test_finished_run_stays_up(snap_compare):
    app, ch = _app(final="finished")
    assert snap_compare(app, terminal_size=(120, 40), run_before=lambda p: _settle(p, ch))


def test_log_scale(snap_compare):
    app, ch = _app()
    assert snap_compare(app, press=["g"], terminal_size=(120, 40),
                        run_before=lambda p: _settle(p, ch))


def test_hparam_dialog_at_80x24(snap_compare):
    """The value input is a bordered box with an example of the chosen setting (betas here)."""
    app, ch = _app()

    async def run_before(pilot):
        await _settle(pilot, ch)
        await pilot.press("h")
        await wait_for(pilot, lambda: pilot.app.screen.id == "hparam-dialog", what="dialog")
        pilot.app.screen.query_one("#hp-input").cursor_blink = False
        pilot.app.screen.query_one("#hp-name").value = "betas"
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
