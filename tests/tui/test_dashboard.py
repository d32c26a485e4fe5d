"""Pilot tests: a real Channel fed by a scripted stream or a fake engine thread."""

from __future__ import annotations

import pytest
from textual.widgets import Input, Static

from danlu.engine.control import events as ev
from danlu.tui.app import create_app
from danlu.tui.format import num
from danlu.tui.screens.lr_dialog import LrDialog
from danlu.tui.screens.quit_dialog import QuitDialog
from danlu.tui.widgets.event_log import EventLog
from danlu.tui.widgets.progress_panel import ProgressPanel
from danlu.tui.widgets.status_line import StatusLine

from .conftest import click, drain_commands, wait_for
from .fake_engine import FakeEngine, emit_run, run_started

SIZE = (120, 40)


def rendered(widget) -> str:
    return str(widget.render())


@pytest.mark.asyncio
async def test_metrics_update_the_widgets(channel):
    emit_run(channel, steps=600)
    app = create_app(channel)
    async with app.run_test(size=SIZE) as pilot:
        state = app.pump.state
        await wait_for(pilot, lambda: state.step == 600, what="step 600")
        await pilot.pause()
        assert state.loss.count == 600 and state.val is not None
        assert "step 600/2000" in rendered(app.screen.query_one(ProgressPanel))
        assert "RUNNING" in rendered(app.screen.query_one(StatusLine))
        # the last evaluation (step 600, in the second epoch of 500 steps), not a stale or later one
        val = rendered(app.screen.query_one("#val", Static))
        assert f"loss {num(state.val.val_loss)}" in val and "at step 600, epoch 2" in val
        log = app.screen.query_one(EventLog).lines_text
        assert any("lr 0.001 → 5.00e-04" in line for line in log)
        assert len(state.markers) == 1  # the LR change, drawn on the loss chart


@pytest.mark.asyncio
async def test_space_sends_pause_then_resume(channel):
    engine = FakeEngine(channel)
    app = create_app(channel, engine.start)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.pump.state.state == "running", what="running")
        await pilot.press("space")
        await wait_for(pilot, lambda: app.pump.state.state == "paused", what="paused")
        await pilot.press("space")
        await wait_for(pilot, lambda: len(engine.received) == 2, what="2 commands")
        assert [c.kind for c in engine.received] == ["pause", "resume"]


@pytest.mark.asyncio
async def test_space_twice_before_the_engine_answers(channel):
    app = create_app(channel)  # no engine: nothing answers
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("space", "space")
        assert [c.kind for c in drain_commands(channel)] == ["pause", "resume"]


@pytest.mark.asyncio
async def test_lr_dialog_sends_set_lr_and_toasts_the_step(channel):
    engine = FakeEngine(channel, step=41)
    app = create_app(channel, engine.start)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.pump.state.run is not None, what="RunStarted")
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, LrDialog), what="LR dialog")
        await pilot.press(*"x0.5", "enter")
        await wait_for(pilot, lambda: engine.received, what="set_lr")
        cmd = engine.received[0]
        assert cmd.kind == "set_lr"
        assert cmd.args == {"value": None, "factor": 0.5, "group": None, "mode": "rescale"}
        await wait_for(pilot, lambda: any("at step 42" in t for t in app.toasts), what="toast")
        assert any("lr 0.001 → 5.00e-04" in t for t in app.toasts)
        assert not isinstance(app.screen, LrDialog)


@pytest.mark.asyncio
async def test_lr_dialog_one_group_override(channel):
    emit_run(channel, steps=100)
    app = create_app(channel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.pump.state.lrs, what="LRs")
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, LrDialog), what="LR dialog")
        app.screen.query_one("#lr-group").value = 1
        app.screen.query_one("#mode-override").value = True
        await pilot.press(*"3e-4", "enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, LrDialog), what="closed")
        (cmd,) = drain_commands(channel)
        assert cmd.args == {"value": 3e-4, "factor": None, "group": 1, "mode": "override"}


@pytest.mark.asyncio
@pytest.mark.parametrize("bad", ["0", "-1", "nan", "inf", "fast"])
async def test_bad_lr_shows_a_message_and_sends_nothing(channel, bad):
    app = create_app(channel)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, LrDialog), what="LR dialog")
        app.screen.query_one("#lr-input", Input).value = bad
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, LrDialog)
        assert rendered(app.screen.query_one("#lr-error", Static)).strip()
        assert drain_commands(channel) == []
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, LrDialog), what="closed")
        assert drain_commands(channel) == []


@pytest.mark.asyncio
@pytest.mark.parametrize("typed", ["1e9", "x1e5", "11"])
async def test_lr_dialog_refuses_what_the_engine_would_refuse(channel, typed):
    # the engine's own bound (the config's optim.lr max), checked before the dialog closes
    emit_run(channel, steps=100)
    app = create_app(channel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.pump.state.lrs, what="the LRs")
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, LrDialog), what="LR dialog")
        app.screen.query_one("#lr-input", Input).value = typed
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, LrDialog)
        assert "largest allowed" in rendered(app.screen.query_one("#lr-error", Static))
        assert drain_commands(channel) == []


@pytest.mark.asyncio
async def test_hparam_dialog_sends_set_hparam(channel):
    app = create_app(channel)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("h")
        await wait_for(pilot, lambda: app.screen.id == "hparam-dialog", what="dialog")
        app.screen.query_one("#hp-name").value = "grad_clip"
        await pilot.pause()
        await pilot.press(*"0", "enter")
        await pilot.pause()
        assert "off" in rendered(app.screen.query_one("#hp-error", Static))
        app.screen.query_one("#hp-input", Input).value = "0.5"
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.id == "dashboard", what="closed")
        (cmd,) = drain_commands(channel)
        assert (cmd.kind, cmd.args) == ("set_hparam", {"name": "grad_clip", "value": 0.5, "group": None})


@pytest.mark.asyncio
async def test_hparam_dialog_input_is_bordered_with_a_placeholder_per_setting(channel):
    app = create_app(channel)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("h")
        await wait_for(pilot, lambda: app.screen.id == "hparam-dialog", what="dialog")
        inp = app.screen.query_one("#hp-input", Input)
        assert inp.has_focus and inp.region.height == 3  # a box to type in, not a bare row
        assert all(edge[0] for edge in (inp.styles.border.top, inp.styles.border.left, inp.styles.border.bottom))
        assert inp.placeholder == "0.01"
        for name, hint in (("momentum", "0.9"), ("betas", "0.9, 0.999"), ("grad_clip", "1.0 or off"),
                           ("eval_every", "500")):
            app.screen.query_one("#hp-name").value = name
            await wait_for(pilot, lambda: inp.placeholder == hint, what=f"placeholder for {name}")
        assert app.screen.query_one(".dialog").region.bottom <= 24  # the whole dialog fits 80x24


@pytest.mark.asyncio
async def test_s_saves_and_toasts_the_path(channel):
    engine = FakeEngine(channel, step=9)
    app = create_app(channel, engine.start)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.pump.state.run is not None, what="RunStarted")
        await pilot.press("s")
        await wait_for(pilot, lambda: any("runs/x/ckpt-10.pt" in t for t in app.toasts),
                       what="checkpoint toast")
        assert [c.kind for c in engine.received] == ["save_checkpoint"]
        await pilot.press("e")
        await wait_for(pilot, lambda: len(engine.received) == 2, what="eval_now")
        assert engine.received[1].kind == "eval_now"


@pytest.mark.asyncio
@pytest.mark.parametrize("key", ["q", "ctrl+c"])
async def test_quit_default_saves_stops_and_joins(channel, key):
    engine = FakeEngine(channel)
    app = create_app(channel, engine.start)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.pump.state.state == "running", what="running")
        await pilot.press(key)
        await wait_for(pilot, lambda: isinstance(app.screen, QuitDialog), what="quit dialog")
        assert app.screen.focused.id == "quit-save"
        await pilot.press("enter")
        await wait_for(pilot, lambda: not app.is_running, what="app exit")
    assert engine.received[-1].kind == "stop" and engine.received[-1].args == {"save": True}
    assert not engine.thread.is_alive()


@pytest.mark.asyncio
async def test_quit_while_paused_on_nan_does_not_promise_a_checkpoint(channel):
    """With NaN/inf the engine writes no checkpoint; the dialog says so instead of 'Save checkpoint'."""
    engine = FakeEngine(channel)
    app = create_app(channel, engine.start)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.pump.state.state == "running", what="running")
        channel.emit(ev.Alert(7, ev.AlertKind.NONFINITE, "non-finite loss (nan) at step 7", "nan_policy=pause"))
        channel.emit(ev.StatusChanged(ev.State.PAUSED, 7, "non-finite values: lower the LR or load a checkpoint"))
        await wait_for(pilot, lambda: app.pump.state.state == "paused", what="paused")
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuitDialog), what="quit dialog")
        text = " ".join(rendered(w) for w in app.screen.query(Static))
        assert "non-finite loss (nan) at step 7" in text and "only if the weights are still finite" in text
        assert "save if the weights are finite" in str(app.screen.query_one("#quit-save").label)
        await pilot.press("enter")
        await wait_for(pilot, lambda: not app.is_running, what="app exit")
    assert engine.received[-1].args == {"save": True}  # the engine decides: it never writes NaN weights


@pytest.mark.asyncio
async def test_quit_without_saving_and_cancel(channel):
    engine = FakeEngine(channel)
    app = create_app(channel, engine.start)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuitDialog), what="quit dialog")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen.id == "dashboard", what="cancelled")
        assert engine.thread.is_alive() and not engine.received
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuitDialog), what="quit dialog")
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: not app.is_running, what="app exit")
    assert engine.received[-1].args == {"save": False}
    assert not engine.thread.is_alive()


@pytest.mark.asyncio
@pytest.mark.parametrize("final", ["finished", "failed"])
async def test_final_state_stays_displayed(channel, final):
    emit_run(channel, steps=400, final=final)
    app = create_app(channel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.pump.state.final, what="final state")
        for _ in range(5):  # it stays up: several ticks later, still there
            await pilot.pause(0.05)
        assert app.is_running
        status = rendered(app.screen.query_one(StatusLine))
        assert final.upper() in status and "press q to quit" in status
        assert ("reached max_steps" if final == "finished" else "out of memory") in status
        await pilot.press("space", "s")  # dead keys once the engine is gone
        assert drain_commands(channel) == []


def ended_run(channel, detail: str = "finished at step 400") -> None:
    """A run that ended as the engine ends one: its last checkpoint, then the final status."""
    emit_run(channel, steps=400)
    channel.emit(ev.CheckpointSaved(400, "runs/demo-20250101-000000/checkpoints/last.pt", "last"))
    channel.emit(ev.StatusChanged("finished", 400, detail))


@pytest.mark.asyncio
async def test_after_the_end_one_toast_and_quit_asks_only_quit_or_cancel(channel):
    ended_run(channel)
    app = create_app(channel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.pump.state.final, what="final state")
        await pilot.pause(0.1)
        end = [t for t in app.toasts if "finished" in t or "checkpoint" in t]
        assert end == ["run finished at step 400; saved checkpoints/last.pt"]  # once, the state said once
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuitDialog), what="quit dialog")
        assert [b.id for b in app.screen.query("Button")] == ["quit-save", "quit-cancel"]
        assert str(app.screen.query_one("#quit-save").label) == "Quit"
        await pilot.press("enter")
        await wait_for(pilot, lambda: not app.is_running, what="app exit")


@pytest.mark.asyncio
async def test_the_end_toast_of_a_fault_says_its_step_once(channel):
    emit_run(channel, steps=200)
    channel.emit(ev.StatusChanged("stopped", 200, "stopped on a fault at step 200: non-finite loss (nan)"))
    app = create_app(channel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.pump.state.final, what="final state")
        await pilot.pause(0.1)
        assert [t for t in app.toasts if t.startswith("run ")] == [
            "run stopped at step 200: on a fault: non-finite loss (nan)"]


@pytest.mark.asyncio
async def test_after_the_end_the_live_keys_leave_the_footer_and_say_the_run_has_ended(channel):
    ended_run(channel)
    app = create_app(channel, can_detach=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.pump.state.final, what="final state")
        await wait_for(pilot, lambda: footer_state(app)[1] == ["g", "q", "ctrl+p"], what="the footer without them")
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert not any(t.startswith(("Pause", "LR", "Save ckpt", "Eval", "Freeze", "Profile", "Detach")) for t in titles)
        assert any(t.startswith("Log scale") for t in titles)
        for key in ("space", "l", "h", "s", "e", "f", "z", "p", "c", "d"):
            app.toasts.clear()
            await pilot.press(key)
            await pilot.pause(0.05)
            assert app.screen.id == "dashboard", key  # no dialog that cannot work (f, z, p, l, h, c)
            assert app.toasts and app.toasts[-1].startswith("the run has finished"), (key, list(app.toasts))
        assert drain_commands(channel) == []


@pytest.mark.asyncio
async def test_a_stop_is_logged_once_not_as_answer_state_and_state_again(channel):
    """danlu ctl RUN stop, seen from an attached dashboard: the answer, the state, the save's return to it."""
    emit_run(channel, steps=200)
    channel.emit(ev.CommandApplied(7, "stop", 200, detail="saving and stopping"))
    channel.emit(ev.StatusChanged("stopping", 200))
    channel.emit(ev.StatusChanged("saving", 200))
    channel.emit(ev.CheckpointSaved(200, "runs/demo-20250101-000000/checkpoints/last.pt", "last"))
    channel.emit(ev.StatusChanged("stopping", 200))
    channel.emit(ev.StatusChanged("stopped", 200, "stopped at step 200"))
    app = create_app(channel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.pump.state.final, what="final state")
        await pilot.pause(0.1)
        log = [line for line in app.screen.query_one(EventLog).lines_text if line.startswith("step 200")]
        assert log == ["step 200: stopping", "step 200: saved checkpoints/last.pt (last)", "step 200: stopped"]


@pytest.mark.asyncio
async def test_the_status_line_of_an_ended_run_stays_one_row_at_80_columns(channel):
    ended_run(channel)
    app = create_app(channel)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.pump.state.final, what="final state")
        await pilot.pause(0.1)
        status = app.screen.query_one(StatusLine)
        assert status.region.height == 1
        assert rendered(status).startswith("● FINISHED  press q to quit ·  at step 400  runs/demo-20250101-000000")


@pytest.mark.asyncio
async def test_unmount_stops_an_engine_left_running(channel):
    engine = FakeEngine(channel)
    app = create_app(channel, engine.start)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.pump.state.state == "running", what="running")
    assert not engine.thread.is_alive()
    assert engine.received[-1].kind == "stop"


@pytest.mark.asyncio
async def test_palette_lists_dashboard_commands(channel):
    app = create_app(channel)
    async with app.run_test(size=SIZE) as pilot:
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert any(t.startswith("LR") for t in titles)
        assert any(t.startswith("Save ckpt") for t in titles)
        _ = pilot


def readme_dashboard_keys() -> list[str]:
    """Every key of the README's dashboard table (`q`, `ctrl+c` count as two)."""
    import re
    from pathlib import Path
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = text.split("## Dashboard", 1)[1].split("\n## ", 1)[0]
    keys = []
    for line in section.splitlines():
        if line.startswith("| `"):
            keys += re.findall(r"`([^`]+)`", line.split("|")[1])
    return keys


def footer_state(app):
    """(compact?, the keys drawn in the footer, palette key included)."""
    from textual.widgets import Footer
    from textual.widgets._footer import FooterKey
    footer = app.screen.query_one(Footer)
    return footer.compact, [k.key for k in footer.query(FooterKey)]


def reachable(app, key: str) -> bool:
    """In the footer now, or a command in the palette (which the footer always shows)."""
    if key in footer_state(app)[1]:
        return True
    titles = [c.title for c in app.get_system_commands(app.screen)]
    binding = app.screen.active_bindings.get(key)
    if binding is not None and binding[1].action in ("app.request_quit", "request_quit"):
        return "Quit" in titles
    return any(t.endswith(f"({key})") for t in titles)


@pytest.mark.asyncio
async def test_footer_follows_resizes_and_every_readme_key_is_reachable(channel):
    keys = readme_dashboard_keys()
    assert {"space", "l", "h", "s", "e", "f", "g", "z", "q", "ctrl+c", "c", "p", "ctrl+p"} <= set(keys)
    app = create_app(channel)
    async with app.run_test(size=(200, 50)) as pilot:
        await wait_for(pilot, lambda: "c" in footer_state(app)[1], what="footer drawn")
        assert footer_state(app) == (False, ["space", "l", "h", "s", "e", "f", "g", "z", "c", "p", "q", "ctrl+p"])
        await pilot.resize_terminal(80, 24)
        await wait_for(pilot, lambda: footer_state(app)[0], what="compact footer")
        await wait_for(pilot, lambda: footer_state(app)[1] == ["space", "l", "h", "s", "e", "c", "q", "ctrl+p"],
                       what="compact keys")
        await pilot.resize_terminal(200, 50)
        await wait_for(pilot, lambda: footer_state(app) == (False, ["space", "l", "h", "s", "e", "f", "g", "z", "c",
                                                                    "p", "q", "ctrl+p"]), what="wide footer again")
        # a resize while a dialog covers the dashboard reaches the footer too
        await pilot.press("h")
        await wait_for(pilot, lambda: app.screen.id == "hparam-dialog", what="dialog")
        await pilot.resize_terminal(80, 24)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen.id == "dashboard", what="dialog closed")
        await wait_for(pilot, lambda: footer_state(app)[0] and "g" not in footer_state(app)[1], what="compact")
        for size in ((60, 20), (80, 24), (93, 30), (100, 30), (120, 40), (200, 50)):
            await pilot.resize_terminal(*size)
            await wait_for(pilot, lambda: footer_fits(app, size[0]), what=f"footer at {size}")
            for key in keys:
                assert reachable(app, key), f"{key} at {size}"


def footer_fits(app, width: int) -> bool:
    """The footer is drawn at `width`: the palette key at the right edge, no key under it."""
    from textual.widgets import Footer
    from textual.widgets._footer import FooterKey
    footer = app.screen.query_one(Footer)
    found = list(footer.query(FooterKey))
    palette = next((k for k in found if k.has_class("-command-palette")), None)
    return (footer.region.width == width and palette is not None and width - 1 <= palette.region.right <= width
            and all(k.region and k.region.right <= palette.region.x for k in found if k is not palette))


@pytest.mark.asyncio
async def test_footer_keys_never_run_under_the_palette_key(channel):
    app = create_app(channel)
    async with app.run_test(size=(120, 40)) as pilot:
        for width in (50, 60, 79, 80, 92, 93, 100, 101, 102, 120):
            await pilot.resize_terminal(width, 30)
            await wait_for(pilot, lambda: footer_fits(app, width), what=f"the footer fitting {width} columns")
            assert {"q", "ctrl+p"} <= set(footer_state(app)[1])


@pytest.mark.asyncio
async def test_compact_layout_at_80x24(channel):
    emit_run(channel, steps=200)
    app = create_app(channel)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.pump.state.step == 200, what="step 200")
        assert app.screen.has_class("-compact")
        assert app.screen.query_one("#loss").size.height >= 8


@pytest.mark.asyncio
@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_top_layers_by_grad_norm_are_shown(channel, size):
    from dataclasses import replace
    import random
    from .fake_engine import metrics, run_started
    norms = {f"encoder.layers.{i}.attention.out_proj": 0.1 * i for i in range(12)} | {"head": 9.0}
    channel.emit(run_started())
    channel.emit(replace(metrics(0, 20, random.Random(0)), layer_norms=norms, layer_norms_step=20))
    app = create_app(channel)
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: app.pump.state.step == 20, what="step 20")
        await pilot.pause()
        listing = rendered(app.screen.query_one("#grad-layers", Static)).splitlines()
        assert len(listing) == 5 and listing[0].startswith("head") and "9" in listing[0]
        assert listing[1].endswith("1.1") and "out_proj" in listing[1]  # long names keep their end
        assert app.screen.query_one("#grad-layers").region.height >= 5  # all five on screen
        grad = app.screen.query_one("#grad")
        assert grad.region.right <= size[0] and "@20" in (grad.border_subtitle if size == (80, 24) else
                                                           rendered(app.screen.query_one("#grad-layers-title")))


@pytest.mark.asyncio
async def test_a_loss_without_accuracy_shows_none(channel):
    from .fake_engine import run_started
    channel.emit(run_started())
    channel.emit(ev.EvalDone(step=10, epoch=1, val_loss=0.25, val_acc=None, best_val_loss=0.25, is_best=True))
    app = create_app(channel)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.pump.state.val is not None, what="eval")
        await pilot.pause()
        val = rendered(app.screen.query_one("#val", Static))
        assert "loss 0.25" in val and "acc" not in val.replace("no accuracy", "") and "None" not in val


@pytest.mark.asyncio
async def test_costly_charts_wait_but_panels_and_events_do_not(channel, monkeypatch):
    """On a slow machine the charts are spaced out (they share the GIL with training);
    the step counter keeps moving at 2 Hz, and a status change draws everything at once."""
    import random

    import danlu.tui.screens.dashboard as dash
    from danlu.tui.widgets.chart import Chart
    from danlu.tui.widgets.loss_chart import LossChart

    from .fake_engine import metrics

    monkeypatch.setattr(dash, "UI_BUDGET", 1e-9)  # any frame is "too costly": charts every CHARTS_MAX_S
    monkeypatch.setattr(dash, "CHARTS_MAX_S", 3.0)  # well apart from the panels' REDRAW_S
    emit_run(channel, steps=200)
    app = create_app(channel)
    async with app.run_test(size=SIZE) as pilot:
        state, screen = app.pump.state, app.screen
        chart = screen.query_one(LossChart).query_one(Chart)
        await wait_for(pilot, lambda: state.step == 200 and screen._shown_version == state.version,
                       what="first frame")
        await pilot.pause(0.3)  # the first frame's cost is measured
        assert screen.charts_interval() == dash.CHARTS_MAX_S
        channel.emit(metrics(200, 20, random.Random(1)))
        await wait_for(pilot, lambda: "step 220/" in rendered(screen.query_one(ProgressPanel)),
                       timeout=dash.REDRAW_S + 1.0, what="the progress panel at step 220")
        assert chart._key[0] < state.version, "the chart redrew before its interval"
        await wait_for(pilot, lambda: chart._key[0] == state.version, timeout=dash.CHARTS_MAX_S + 1.5,
                       what="the chart catching up")
        channel.emit(metrics(220, 20, random.Random(2)))
        channel.emit(ev.StatusChanged("paused", 240))
        await wait_for(pilot, lambda: chart._key[0] == state.version, timeout=0.6,
                       what="a status change redrawing the charts at once")


@pytest.mark.asyncio
async def test_the_channel_is_drained_fast_only_while_a_command_waits(channel):
    """A few drains a second while metrics flow (each wakeup costs the training thread GIL
    time); 20 a second from a key press until its answer arrives, so it shows at once."""
    import time

    app = create_app(channel)  # no engine: the test answers by hand
    async with app.run_test(size=SIZE) as pilot:
        ticks = []
        real_tick = app.pump.tick
        app.pump.tick = lambda: (ticks.append(time.monotonic()), real_tick())[1]

        async def drains_in(seconds: float) -> int:
            n = len(ticks)
            await pilot.pause(seconds)
            return len(ticks) - n

        assert await drains_in(1.0) <= 6  # idle: TICK_S
        await pilot.press("s")
        [cmd] = drain_commands(channel)
        assert await drains_in(1.0) >= 8  # waiting for the answer: ANSWER_TICK_S
        channel.emit(ev.CheckpointSaved(5, "runs/x/ckpt-5.pt", "request"))
        channel.emit(ev.CommandApplied(cmd.id, cmd.kind, 5))
        await wait_for(pilot, lambda: not app.pump.awaiting, what="the answer folded")
        assert await drains_in(1.0) <= 6  # answered: back to TICK_S
        assert any("checkpoint saved at step 5" in t for t in app.toasts)


@pytest.mark.asyncio
async def test_a_burst_of_spike_alerts_is_logged_but_toasted_once(channel):
    """A fast, spiky run can send several spike alerts a second: each goes to the event log, one
    toast stands for them, and none forces the charts to redraw before their interval."""
    import danlu.tui.screens.dashboard as dash
    from danlu.tui.widgets.chart import Chart
    from danlu.tui.widgets.loss_chart import LossChart

    emit_run(channel, steps=200)
    app = create_app(channel)
    async with app.run_test(size=SIZE) as pilot:
        state, screen = app.pump.state, app.screen
        chart = screen.query_one(LossChart).query_one(Chart)
        await wait_for(pilot, lambda: state.step == 200 and screen._shown_version == state.version,
                       what="first frame")
        screen._drawn_at = float("inf")  # the charts' own interval never comes in this test
        for i in range(5):
            channel.emit(ev.Alert(200 + i, "spike", f"loss spike at step {200 + i}: 9 vs recent 0.1"))
        await wait_for(pilot, lambda: sum("loss spike" in line for line in screen.query_one(EventLog).lines_text) == 5,
                       what="five spikes in the event log")
        assert sum("loss spike" in t for t in app.toasts) == 1
        assert chart._key[0] < state.version, "a spike alert redrew the charts at once"
        channel.emit(ev.Alert(210, "oom", "out of memory at step 210"))  # other alerts still draw at once
        await wait_for(pilot, lambda: chart._key[0] == state.version, timeout=1.0, what="the oom redraw")
        assert any("out of memory" in t for t in app.toasts)
        assert dash.SPIKE_TOAST_S >= 5


@pytest.mark.asyncio
async def test_z_freezes_and_unfreezes_and_the_dashboard_shows_trainable_and_a_marker(channel):
    import dataclasses
    from danlu.tui.screens.freeze_dialog import FreezeDialog
    started = dataclasses.replace(run_started(), trainable_params=1_000, config={"train": {"overfit_batches": 1}})
    channel.emit(started)
    app = create_app(channel)
    async with app.run_test(size=SIZE) as pilot:
        state = app.pump.state
        await wait_for(pilot, lambda: state.run is not None, what="RunStarted")
        await pilot.pause()
        panel = app.screen.query_one(ProgressPanel)
        assert "OVERFIT 1 batch" in str(panel.border_title)
        assert panel.border_subtitle == "trainable 1k/1.23M"
        await pilot.press("z")
        await wait_for(pilot, lambda: isinstance(app.screen, FreezeDialog), what="freeze dialog")
        await pilot.press(*"(", "enter")  # not a regex: said, nothing sent
        assert "Not a valid regex" in str(app.screen.query_one("#freeze-error", Static).render())
        app.screen.query_one("#freeze-match", Input).value = r"^features\."
        await click(pilot, "#op-unfreeze")
        app.screen.query_one("#freeze-mult", Input).value = "0.1"
        await click(pilot, "#freeze-apply")
        await wait_for(pilot, lambda: not isinstance(app.screen, FreezeDialog), what="dialog closed")
        (cmd,) = drain_commands(channel)
        assert cmd.kind == "unfreeze" and cmd.args == {"match": r"^features\.", "lr_mult": 0.1}
        channel.emit(ev.ParamsChanged(7, "unfreeze", r"^features\.", 12, 233_567, 1_234_567, 1_234_567,
                                      ["backbone", "head", r"unfreeze:^features\."], "unfroze 12 tensors"))
        channel.emit(ev.CommandApplied(cmd.id, "unfreeze", 7, 1_000, 1_234_567, "unfroze 12 tensors"))
        await wait_for(pilot, lambda: (7, "freeze") in state.markers, what="marker")
        await wait_for(pilot, lambda: panel.border_subtitle == "params 1.23M", what="subtitle")
        assert state.groups[-1] == r"unfreeze:^features\."
        await wait_for(pilot, lambda: any("unfroze 12 tensors; trainable 1,000 → 1,234,567" in t for t in app.toasts), what="toast")
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert any(t.startswith("Freeze") for t in titles)
