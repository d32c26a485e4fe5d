"""History from a run's files: what a resumed or attached dashboard draws before the live tail."""

from __future__ import annotations

import math
import random

import pytest
from textual.widgets import Static

from danlu.engine.control import events as ev
from danlu.engine.store.runlog import RunLog
from danlu.tui import history
from danlu.tui.app import create_app
from danlu.tui.format import num
from danlu.tui.history import read_history
from danlu.tui.widgets.event_log import EventLog

from .conftest import wait_for
from .fake_engine import metrics, run_started


def write_steps(log: RunLog, first: int, last: int, lr: float = 1e-3) -> None:
    steps = list(range(first, last + 1))
    log.train_steps(steps, [1 + s // 100 for s in steps], [2.0 / s for s in steps], [[lr, lr * 10] for _ in steps],
                    [0.5 for _ in steps], set())


def make_run(tmp_path, last: int = 300):
    log = RunLog(tmp_path)
    write_steps(log, 1, last)
    log.metric({"step": 100, "epoch": 1, "val_loss": 1.5, "val_acc": 0.4})
    log.metric({"step": 200, "epoch": 2, "val_loss": 0.75, "val_acc": 0.625})
    log.event("set_lr", 150, old=[1e-3, 1e-2], new=[5e-4, 5e-3])
    log.event("checkpoint", 200, path=str(tmp_path / "checkpoints" / "step-0000200.pt"), reason="periodic")
    log.close()
    return tmp_path


def test_reads_every_step_eval_and_event(tmp_path):
    h = read_history(make_run(tmp_path))
    assert h.steps == list(range(1, 301))
    assert h.loss[0] == 2.0 and h.loss[-1] == 2.0 / 300
    assert h.lrs == [1e-3, 1e-2] and h.epoch == 4
    assert [e["step"] for e in h.evals] == [100, 200]
    assert [e["kind"] for e in h.events] == ["set_lr", "checkpoint"]


def test_resume_after_a_crash_keeps_the_timeline_that_led_to_now(tmp_path):
    # steps 1-300, a crash, a resume from step 200 that went on to 250: 201-300 of the first
    # attempt are not part of this run's past any more
    log = RunLog(tmp_path)
    write_steps(log, 1, 300, lr=1.0)
    write_steps(log, 201, 250, lr=2.0)
    log.close()
    h = read_history(tmp_path)
    assert h.steps == list(range(1, 251))
    assert h.lr[199] == 1.0 and h.lr[200] == 2.0
    # a resume now, from step 220: only what led there
    assert read_history(tmp_path, upto_step=220).steps == list(range(1, 221))


def test_null_values_and_a_half_written_line(tmp_path):
    log = RunLog(tmp_path)
    write_steps(log, 1, 5)
    log.train_steps([6], [1], [math.nan], [[1e-3]], [math.inf], set())
    log.close()
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 7, "epoch": 1, "loss": 0.1')  # the engine is writing it right now
    h = read_history(tmp_path)
    assert h.steps == [1, 2, 3, 4, 5, 6]
    assert math.isnan(h.loss[-1]) and math.isnan(h.grad_norm[-1])


def test_a_long_file_is_sampled_but_keeps_its_newest_steps_exact(tmp_path, monkeypatch):
    monkeypatch.setattr(history, "TAIL_BYTES", 2000)
    monkeypatch.setattr(history, "EXACT_BYTES", 4000)
    monkeypatch.setattr(history, "SAMPLES", 100)
    log = RunLog(tmp_path)
    write_steps(log, 1, 5000)
    log.close()
    h = read_history(tmp_path)
    assert h.steps[0] == 1 and h.steps[-1] == 5000
    assert 100 < len(h.steps) < 200  # 100 samples and the tail's ~20 lines
    assert h.steps == sorted(set(h.steps))
    tail = h.steps[-15:]
    assert tail == list(range(4986, 5001))


@pytest.mark.asyncio
async def test_a_resumed_run_shows_its_loss_from_step_1_and_its_last_eval(tmp_path):
    run_dir = make_run(tmp_path)
    channel = ev_channel()
    started = run_started()
    channel.emit(ev.RunStarted(**{**started.__dict__, "run_dir": str(run_dir), "start_step": 300}))
    channel.emit(ev.StatusChanged("running", 300))
    channel.emit(metrics(300, 20, random.Random(0)))
    app = create_app(channel)
    async with app.run_test(size=(120, 40)) as pilot:
        state = app.pump.state
        await wait_for(pilot, lambda: state.step == 320, what="step 320")
        await pilot.pause()
        assert state.loss.first_step == 1 and state.loss.count == 320
        assert state.val is not None and state.val.step == 200
        val = str(app.screen.query_one("#val", Static).render())
        assert f"loss {num(0.75)}" in val and "not evaluated" not in val
        assert state.best_val_loss == 0.75
        assert (150, "set_lr") in state.markers
        log = app.screen.query_one(EventLog).lines_text
        assert any("saved checkpoints/step-0000200.pt" in line for line in log)
        assert any(line.startswith("history from the run's files: steps 1-300, 2 evaluations") for line in log)


def ev_channel():
    from danlu.engine.control.channel import Channel
    return Channel()
