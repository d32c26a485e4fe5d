"""The dashboard driven by the real Trainer in its thread (tiny CPU config), through Pilot.

These are the end-to-end checks of the command/event loop: keys go out as
commands, the trainer applies them at step boundaries, the answers come back
and show. Conditions are waited on with deadlines; the one fixed wait checks
that something does *not* happen (steps while paused).
"""

from __future__ import annotations

import threading
from pathlib import Path

import psutil
import pytest
from textual.widgets import Input, Static

from danlu.engine.control.channel import Channel
from danlu.tui.app import create_app
from danlu.tui.screens.lr_dialog import LrDialog
from danlu.tui.screens.quit_dialog import QuitDialog
from danlu.tui.widgets.event_log import EventLog
from danlu.tui.widgets.status_line import StatusLine

from ..conftest import TINY, merge
from ..tui.conftest import wait_for

SIZE = (120, 40)
# Long enough that the run is still going when each test ends; intervals off so the
# only checkpoints are the ones a test asks for.
ENDLESS = {"train": {"epochs": 10_000, "eval_every": 100_000, "checkpoint_every": 100_000}}
T = 30.0  # generous deadlines: the CPU is shared


def engine_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "danlu-engine" and t.is_alive()]


def real_app(cfg):
    from danlu.engine.loop.runner import start_engine

    channel = Channel()
    app = create_app(channel, lambda: start_engine(cfg, channel))
    return app


def trainer_of(app):
    return app.engine_thread.trainer


async def running(pilot, min_step: int = 1):
    app = pilot.app
    await wait_for(pilot, lambda: app.pump.state.state == "running"
                   and app.pump.state.step >= min_step, timeout=T, what="the run to be stepping")
    return trainer_of(app)


def text(widget) -> str:
    return str(widget.render())


@pytest.mark.asyncio
async def test_space_pauses_the_trainer_and_resumes_it(tiny_config):
    app = real_app(tiny_config(ENDLESS))
    async with app.run_test(size=SIZE) as pilot:
        trainer = await running(pilot)
        await pilot.press("space")
        await wait_for(pilot, lambda: app.pump.state.state == "paused", timeout=T, what="PAUSED")
        assert "PAUSED" in text(app.screen.query_one(StatusLine))
        paused_at = trainer.step
        await pilot.pause(0.3)  # the negative check: several steps' worth of time, no step
        assert trainer.step == paused_at
        await pilot.press("space")
        await wait_for(pilot, lambda: trainer.step > paused_at + 2, timeout=T, what="steps after resume")
        assert app.pump.state.state == "running"
        log = app.screen.query_one(EventLog).lines_text
        assert any(line.startswith(f"step {paused_at}: paused") for line in log)


@pytest.mark.asyncio
async def test_lr_dialog_applies_and_toasts_the_step(tiny_config):
    app = real_app(tiny_config(ENDLESS))
    async with app.run_test(size=SIZE) as pilot:
        trainer = await running(pilot)
        before = trainer.optimizer.param_groups[0]["lr"]
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, LrDialog), what="LR dialog")
        await pilot.press(*"/2", "enter")
        await wait_for(pilot, lambda: any(t.startswith("lr ") and " at step " in t for t in app.toasts),
                       timeout=T, what="the CommandApplied toast")
        toast = next(t for t in app.toasts if t.startswith("lr "))
        step = int(toast.rsplit(" at step ", 1)[1])
        assert step >= 1
        assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(before / 2)
        log = app.screen.query_one(EventLog).lines_text
        assert any(line.startswith(f"step {step}: lr ") for line in log)


@pytest.mark.asyncio
async def test_bad_lr_is_refused_in_the_dialog(tiny_config):
    app = real_app(tiny_config(ENDLESS))
    async with app.run_test(size=SIZE) as pilot:
        trainer = await running(pilot)
        before = trainer.optimizer.param_groups[0]["lr"]
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, LrDialog), what="LR dialog")
        app.screen.query_one("#lr-input", Input).value = "-3"
        await pilot.press("enter")
        await wait_for(pilot, lambda: text(app.screen.query_one("#lr-error", Static)).strip(),
                       what="the error message")
        assert isinstance(app.screen, LrDialog)
        assert ">" in text(app.screen.query_one("#lr-error", Static))  # says what to type
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, LrDialog), what="closed")
        assert not [c for c in app.pump.sent.values() if c.kind == "set_lr"]
        assert trainer.optimizer.param_groups[0]["lr"] == before


@pytest.mark.asyncio
async def test_s_writes_a_checkpoint(tiny_config):
    app = real_app(tiny_config(ENDLESS))
    async with app.run_test(size=SIZE) as pilot:
        trainer = await running(pilot)
        await pilot.press("s")
        await wait_for(pilot, lambda: app.pump.state.last_checkpoint is not None, timeout=T,
                       what="CheckpointSaved")
        saved = app.pump.state.last_checkpoint
        assert saved.reason == "request"
        assert Path(saved.path).is_file() and Path(saved.path).parent == trainer.run_dir / "checkpoints"
        await wait_for(pilot, lambda: any("checkpoint saved" in t for t in app.toasts), what="toast")


@pytest.mark.asyncio
async def test_quit_default_saves_and_leaves_nothing_running(tiny_config):
    me = psutil.Process()
    children_before = {p.pid for p in me.children(recursive=True)}
    app = real_app(tiny_config(ENDLESS))
    async with app.run_test(size=SIZE) as pilot:
        trainer = await running(pilot)
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuitDialog), what="quit dialog")
        await pilot.press("enter")
        await wait_for(pilot, lambda: not app.is_running, timeout=T, what="the app to exit")
    assert not engine_threads()
    assert trainer.final_state == "stopped"
    assert (trainer.run_dir / "checkpoints" / "last.pt").is_file()
    assert {p.pid for p in me.children(recursive=True)} <= children_before  # no DataLoader workers


@pytest.mark.asyncio
async def test_ctrl_c_opens_the_dialog_and_cancel_keeps_training(tiny_config):
    app = real_app(tiny_config(ENDLESS))
    async with app.run_test(size=SIZE) as pilot:
        trainer = await running(pilot)
        await pilot.press("ctrl+c")
        await wait_for(pilot, lambda: isinstance(app.screen, QuitDialog), what="quit dialog")
        await pilot.press("escape")
        step = trainer.step
        await wait_for(pilot, lambda: trainer.step > step + 2, timeout=T, what="training goes on")
        assert app.engine_alive
    assert not engine_threads()  # unmount stopped and joined it


@pytest.mark.asyncio
async def test_quit_after_the_run_ended_exits_at_once(tiny_config):
    app = real_app(tiny_config({"train": {"epochs": 1, "max_steps": 3}}))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.pump.state.state == "finished", timeout=T, what="FINISHED")
        await wait_for(pilot, lambda: not app.engine_alive, timeout=T, what="the thread to end")
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuitDialog), what="quit dialog")
        assert not app.screen.running
        await pilot.press("enter")
        await wait_for(pilot, lambda: not app.is_running, timeout=2.0, what="an immediate exit")
    assert not engine_threads()


@pytest.mark.asyncio
async def test_a_bad_data_root_shows_the_reason(tmp_path):
    from danlu.engine.config.schema import from_dict

    (tmp_path / "empty").mkdir()  # a folder without the dataset's files (a missing one: danlu check says so)
    raw = merge(TINY, {"run": {"out_dir": str(tmp_path / "runs")},
                       "data": {"name": "mnist", "root": str(tmp_path / "empty")}})
    raw["data"]["args"] = {}  # mnist takes none
    app = real_app(from_dict(raw))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.pump.state.state == "failed", timeout=T, what="FAILED")
        await wait_for(pilot, lambda: app.screen.query_one(EventLog).lines_text, what="log lines")
        await pilot.pause()
        status = text(app.screen.query_one(StatusLine))
        assert "FAILED" in status and "has no MNIST files" in status
        log = "\n".join(app.screen.query_one(EventLog).lines_text)
        assert "has no MNIST files" in log and "data.download=true" in log
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuitDialog), what="quit dialog")
        await pilot.press("enter")
        await wait_for(pilot, lambda: not app.is_running, timeout=2.0, what="an immediate exit")
    assert not engine_threads()
