"""Nothing lost: save failures, broken checkpoints, numerical faults, OOM, crashes in user code."""

from __future__ import annotations

import errno
import io
import math
from pathlib import Path

import pytest
import torch

from danlu.engine.store import checkpoint_file as ckpt
from danlu.engine.control import events as ev
from danlu.engine.errors import CheckpointError
from danlu.engine.store.runlog import read_jsonl
from danlu.engine.config.files import config_for_resume

from .helpers import of_type, run_trainer

FAULTY = str(Path(__file__).with_name("faulty_model.py"))


def faulty(fault: str, at: int, once: bool = True, until: int | None = None, **over):
    model = {"name": f"{FAULTY}:build", "args": {"fault": fault, "at": at, "once": once, "until": until}}
    return {"model": model, **over}


def test_save_failure_alerts_keeps_previous_and_training_goes_on(tiny_config, monkeypatch):
    real_save = torch.save
    calls = {"n": 0}

    def flaky_save(obj, f, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(ckpt.torch, "save", flaky_save)
    t, ch = run_trainer(tiny_config({"train": {"max_steps": 6, "checkpoint_every": 2}}))
    assert t.final_state == "finished" and t.step == 6
    alerts = [a for a in of_type(ch.seen, ev.Alert) if a.kind == "save_failed"]
    assert len(alerts) == 1
    assert "step-0000004.pt" in alerts[0].message and "No space left" in alerts[0].message
    ck = t.run_dir / "checkpoints"
    assert not list(ck.glob(".*tmp")), "temp file left behind"
    assert ckpt.load(ck / "step-0000002.pt")["step"] == 2  # the previous one is intact
    assert any(e["kind"] == "save_failed" for e in read_jsonl(t.run_dir / "events.jsonl"))


def test_keep_last_prunes_only_after_the_new_one_is_written(tiny_config):
    t, _ = run_trainer(tiny_config({"train": {"max_steps": 10, "checkpoint_every": 2, "keep_last": 2}}))
    names = sorted(p.name for p in (t.run_dir / "checkpoints").glob("step-*.pt"))
    assert names == ["step-0000006.pt", "step-0000008.pt"]


def test_requested_checkpoints_are_never_rotated_away(tiny_config):
    t, _ = run_trainer(tiny_config({"train": {"max_steps": 12, "checkpoint_every": 2, "keep_last": 1}}),
                       script={3: [ev.save_checkpoint()]})
    names = sorted(p.name for p in (t.run_dir / "checkpoints").glob("step-*.pt"))
    assert names == ["step-0000003-request.pt", "step-0000010.pt"]
    assert ckpt.load(t.run_dir / "checkpoints" / "step-0000003-request.pt")["step"] == 3


def test_resume_skips_truncated_checkpoint_with_warning(tiny_config):
    t, _ = run_trainer(tiny_config({"train": {"max_steps": 6, "checkpoint_every": 3}}))
    for name in ("last.pt", "best.pt"):  # both hold step 6
        p = t.run_dir / "checkpoints" / name
        p.write_bytes(p.read_bytes()[:200])
    warnings = []
    path, obj = ckpt.find_latest(t.run_dir, warn=warnings.append)
    assert path.name == "step-0000003.pt" and obj["step"] == 3
    assert any("last.pt" in w and "truncated or corrupted" in w for w in warnings)


def test_only_checkpoint_truncated_is_refused(tiny_config):
    t, _ = run_trainer(tiny_config({"train": {"max_steps": 4}}))
    for p in (t.run_dir / "checkpoints").glob("*.pt"):
        p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="no usable checkpoint"):
        ckpt.find_latest(t.run_dir)


def test_checkpoint_of_another_model_lists_mismatches(tiny_config, tmp_path):
    net = tmp_path / "net.py"  # the user's own model, edited between the run and its resume
    net.write_text("import math\nfrom torch import nn\nWIDTH = 8\ndef build(num_classes, input_shape, **_):\n"
                   "    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), WIDTH), nn.ReLU(),\n"
                   "                         nn.Linear(WIDTH, num_classes))\n")
    t, _ = run_trainer(tiny_config({"model": {"name": f"{net}:build", "args": {}}, "train": {"max_steps": 3}}))
    net.write_text(net.read_text().replace("WIDTH = 8", "WIDTH = 12"))
    import sys
    for name in [n for n, m in sys.modules.items() if getattr(m, "__file__", None) == str(net)]:
        del sys.modules[name]  # a new process would read the edited file
    with pytest.raises(CheckpointError) as e:
        run_trainer(config_for_resume(t.run_dir), resume=t.run_dir)
    msg = str(e.value)
    assert "different model" in msg and "shape mismatches" in msg and "1.weight" in msg


class _Payload:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_pickle_payload_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.pt"
    torch.save({"model": {}, "x": _Payload(str(marker))}, bad)
    with pytest.raises(CheckpointError, match="refused"):
        ckpt.load(bad)
    assert not marker.exists()


def test_checkpoints_load_with_weights_only(tiny_config):
    t, _ = run_trainer(tiny_config({"schedule": {"name": "onecycle"}, "train": {"max_steps": 3}}))
    obj = torch.load(t.run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert {"model", "optimizer", "schedule", "rng", "step", "epoch", "batch_in_epoch"} <= set(obj)


@pytest.mark.parametrize("policy", ["stop", "pause", "skip"])
def test_nonfinite_loss_follows_policy_and_never_saves_nan(tiny_config, policy):
    over = faulty("nan", at=5, once=(policy != "stop"), monitor={"nan_policy": policy, "log_every": 2},
                  train={"max_steps": 10, "checkpoint_every": 4})
    t, ch = run_trainer(tiny_config(over), resume_when_paused=(policy == "pause"))
    alerts = [a for a in of_type(ch.seen, ev.Alert) if a.kind == "nonfinite"]
    assert alerts and "step 5" in alerts[0].message and "nan" in alerts[0].message
    for p in (t.run_dir / "checkpoints").glob("*.pt"):
        state = ckpt.load(p)["model"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()), p.name
    if policy == "stop":
        assert t.final_state == "stopped" and t.step < 10
    if policy == "pause":
        assert any(isinstance(e, ev.StatusChanged) and e.state == "paused" for e in ch.seen)
    if policy == "skip":
        assert t.final_state == "finished"
        assert all(math.isfinite(r["loss"]) for r in read_jsonl(t.run_dir / "metrics.jsonl")
                   if "loss" in r and r["step"] != 5)


def test_headless_pause_policy_stops_instead_of_waiting(tiny_config):
    from danlu.engine.loop.trainer import Trainer
    from .helpers import ScriptedChannel
    ch = ScriptedChannel()
    t = Trainer(tiny_config(faulty("nan", at=3, once=False, train={"max_steps": 50})), ch)
    t.interactive = False
    ch.trainer = t
    assert t.run() == "stopped"
    assert t.step < 50


def test_loss_spike_raises_alert(tiny_config):
    t, ch = run_trainer(tiny_config(faulty("spike", at=30, train={"epochs": 4})))
    spikes = [a for a in of_type(ch.seen, ev.Alert) if a.kind == "spike"]
    assert spikes and "step 30" in spikes[0].message


def test_oom_saves_pauses_and_the_step_is_redone(tiny_config):
    over = faulty("oom", at=4, train={"max_steps": 8})
    t, ch = run_trainer(tiny_config(over), resume_when_paused=True)
    ooms = [a for a in of_type(ch.seen, ev.Alert) if a.kind == "oom"]
    assert ooms and "data.batch_size=8" in ooms[0].details and "grad_accum=2" in ooms[0].details
    assert any(isinstance(e, ev.StatusChanged) and e.state == "paused" for e in ch.seen)
    assert (t.run_dir / "checkpoints" / "step-0000003-fault.pt").exists()
    assert t.final_state == "finished" and t.step == 8
    steps = [r["step"] for r in read_jsonl(t.run_dir / "metrics.jsonl") if "loss" in r]
    assert steps == list(range(1, 9))  # no step lost, none doubled


def test_oom_headless_stops_with_checkpoint(tiny_config):
    from danlu.engine.loop.trainer import Trainer
    from .helpers import ScriptedChannel
    ch = ScriptedChannel()
    t = Trainer(tiny_config(faulty("oom", at=4, train={"max_steps": 8})), ch)
    t.interactive = False
    ch.trainer = t
    assert t.run() == "stopped" and t.step == 3
    # the injected fault counts forward passes from the start of each process: 4 more would come at
    # step 7, so the resumed run is made to end at 6 (a shorter run is a change a resume can make)
    resumed, _ = run_trainer(config_for_resume(t.run_dir, ["train.max_steps=6"]), resume=t.run_dir)
    assert resumed.final_state == "finished" and resumed.step == 6


def test_crash_in_user_code_marks_run_failed_with_traceback(tiny_config):
    t, ch = run_trainer(tiny_config(faulty("crash", at=6, train={"max_steps": 10, "checkpoint_every": 2})))
    assert t.final_state == "failed"
    err = [a for a in of_type(ch.seen, ev.Alert) if a.kind == "error"][0]
    assert "bug in the user's model" in err.message and "Traceback" in err.details
    assert (t.run_dir / "checkpoints" / "step-0000004.pt").exists()
    import json
    assert json.loads((t.run_dir / "state.json").read_text())["state"] == "failed"


def test_gradscaler_skipped_steps_are_counted_and_hold_the_schedule(tiny_config):
    """fp16's GradScaler skips overflow steps: counted, shown, no alert, the schedule does not advance."""
    from danlu.engine.loop.trainer import Trainer
    from .helpers import ScriptedChannel
    cfg = tiny_config(faulty("infgrad", at=6, schedule={"name": "cosine"}, train={"max_steps": 10}))
    ch = ScriptedChannel()
    t = Trainer(cfg, ch)
    ch.trainer = t
    real_setup = t.setup

    def setup_with_scaler():
        real_setup()
        t.state.scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 8)  # what fp16 on CUDA uses

    t.setup = setup_with_scaler
    assert t.run() == "finished" and t.step == 10
    assert t.metrics.amp_skipped == 1
    assert not [a for a in of_type(ch.seen, ev.Alert) if a.kind == "nonfinite"]
    assert of_type(ch.seen, ev.Metrics)[-1].amp_skipped == 1
    recs = [r for r in read_jsonl(t.run_dir / "metrics.jsonl") if "loss" in r]
    assert [r["step"] for r in recs if r.get("amp_skipped")] == [6]
    assert recs[6]["lr"] == recs[5]["lr"]  # the skipped step did not advance the cosine


# --- a fault stop is not a success: exit code 3, and the closing words name the real last checkpoint ---

def _headless(cfg, resume=None):
    """The engine as `danlu run --headless` starts it; returns the thread after it ended."""
    from danlu.engine.loop.runner import start_engine
    from .helpers import ScriptedChannel
    thread = start_engine(cfg, ScriptedChannel(), resume=resume, interactive=False)
    thread.join()
    return thread


@pytest.mark.parametrize("policy", ["stop", "pause"])  # pause means stop without a dashboard
def test_nonfinite_stop_exits_3_and_names_the_checkpoint_that_exists(tiny_config, policy):
    from danlu.engine.loop.runner import EXIT_FAULT
    over = faulty("nan", at=5, once=False, monitor={"nan_policy": policy, "log_every": 2},
                  train={"max_steps": 40, "checkpoint_every": 3})
    thread = _headless(tiny_config(over))
    code, text = thread.outcome()
    t = thread.trainer
    assert code == EXIT_FAULT == 3 and t.final_state == "stopped"
    assert "stopped on a fault" in text and "non-finite loss (nan)" in text
    assert "checkpoint saved" not in text  # none was written at the stop
    good = t.run_dir / "checkpoints" / "step-0000003.pt"
    assert f"the last good one is {good} (step 3)" in text and ckpt.load(good)["step"] == 3
    assert not (t.run_dir / "checkpoints" / "last.pt").exists()
    import json
    state = json.loads((t.run_dir / "state.json").read_text())
    assert state["state"] == "stopped" and state["stop_reason"] == "nonfinite" and "nan" in state["fault"]


def test_nonfinite_at_the_last_step_is_a_fault_not_finished(tiny_config):
    # the last flush comes after the last step boundary: it must not be taken for a clean finish
    over = faulty("nan", at=8, monitor={"nan_policy": "stop", "log_every": 100},
                  train={"max_steps": 8, "checkpoint_every": 4})
    thread = _headless(tiny_config(over))
    code, text = thread.outcome()
    assert code == 3 and thread.trainer.final_state == "stopped", text
    assert "stopped on a fault at step 8: non-finite loss (nan) at step 8 (nan_policy=stop)" in text
    assert "step-0000004.pt (step 4)" in text


def test_stopping_by_hand_while_paused_on_nan_is_a_fault(tiny_config):
    # the dashboard's nan pause, then the quit dialog's "save and quit": nothing can be saved
    over = faulty("nan", at=3, monitor={"nan_policy": "pause", "log_every": 1},
                  train={"max_steps": 10, "checkpoint_every": 1})
    from danlu.engine.loop.runner import EngineThread
    from danlu.engine.loop.trainer import Trainer
    from .helpers import ScriptedChannel
    ch = ScriptedChannel({3: [ev.stop(save=True)]})
    t = Trainer(tiny_config(over), ch)
    ch.trainer = t
    assert t.run() == "stopped" and t.fault and "NaN/inf" in t.fault
    thread = EngineThread(t.cfg, ch)
    thread.trainer, thread.final_state = t, t.final_state
    code, text = thread.outcome()
    assert code == 3 and "checkpoint saved" not in text and "step-0000002.pt (step 2)" in text


def test_a_requested_stop_says_saved_only_when_it_saved(tiny_config):
    from danlu.engine.loop.runner import EngineThread
    t, ch = run_trainer(tiny_config(faulty("none", at=1000, train={"max_steps": 20})),
                        script={4: [ev.stop(save=False)]})
    thread = EngineThread(t.cfg, ch)
    thread.trainer, thread.final_state = t, t.final_state
    code, text = thread.outcome()
    assert code == 0 and "no checkpoint was written" in text and "saved" not in text


def test_skip_streak_is_one_line_and_stops_after_max_skips(tiny_config):
    # NaN for 30 forward passes: without the limit the run would skip them all and go on (or hang, for good)
    over = faulty("nan", at=3, once=False, until=32, monitor={"nan_policy": "skip", "max_skips": 5, "log_every": 1},
                  train={"max_steps": 40, "checkpoint_every": 2, "eval_every": 2})
    thread = _headless(tiny_config(over))
    t, (code, text) = thread.trainer, thread.outcome()
    assert code == 3 and t.final_state == "stopped" and t.step == 2
    alerts = [a for a in of_type(thread.channel.seen, ev.Alert) if a.kind == "nonfinite"]
    assert len(alerts) == 1, [a.message for a in alerts]
    assert "step 3 skipped 5 times in a row" in alerts[0].message and "max_skips=5" in alerts[0].message
    assert "step 3 skipped 5 times in a row" in text
    events = read_jsonl(t.run_dir / "events.jsonl")
    nonfinite = [e for e in events if e["kind"] in ("nonfinite", "skip")]
    assert len(nonfinite) == 1 and nonfinite[0]["skipped"] == 5
    # a skipped step is no step: its checkpoint and eval are not done again
    assert [e["step"] for e in events if e["kind"] == "checkpoint" and e["reason"] == "periodic"] == [2]
    assert len([r for r in read_jsonl(t.run_dir / "metrics.jsonl") if "val_loss" in r]) == 1
    assert "step-0000002.pt (step 2)" in text


def test_a_skip_streak_that_ends_is_one_line_and_training_goes_on(tiny_config):
    over = faulty("nan", at=3, once=False, until=6, monitor={"nan_policy": "skip", "max_skips": 10},
                  train={"max_steps": 10})
    t, ch = run_trainer(tiny_config(over))
    assert t.final_state == "finished" and t.step == 10 and t.fault is None
    alerts = [a for a in of_type(ch.seen, ev.Alert) if a.kind == "nonfinite"]
    assert [a.message for a in alerts] == [
        "step 3 skipped 4 times in a row, a new batch each time: non-finite loss (nan) first; "
        "nan_policy=skip, training went on"]


def test_skip_with_a_finite_loss_and_an_infinite_gradient_keeps_the_weights_finite(tiny_config):
    from danlu.engine.store.trainer_state import weights_finite
    over = faulty("infgrad", at=4, once=False, until=5, monitor={"nan_policy": "skip", "log_every": 1},
                  train={"max_steps": 8, "checkpoint_every": 1, "grad_clip": None})
    t, ch = run_trainer(tiny_config(over))
    assert t.final_state == "finished" and t.step == 8, t.error
    assert weights_finite(t.model)
    for p in (t.run_dir / "checkpoints").glob("*.pt"):
        assert all(torch.isfinite(v).all() for v in ckpt.load(p)["model"].values() if v.is_floating_point()), p
    alerts = [a.message for a in of_type(ch.seen, ev.Alert) if a.kind == "nonfinite"]
    assert len(alerts) == 1 and alerts[0].startswith("step 4 skipped 2 times in a row")
    assert "non-finite grad norm" in alerts[0] and "with a finite loss" in alerts[0]


# --- an exception mid-run keeps the work: a crash checkpoint that --resume uses ---

def test_crash_saves_a_crash_checkpoint_and_resume_redoes_the_step_whole(tiny_config, monkeypatch):
    """grad_accum 2: the crash comes in step 5's second micro-batch (forward call 10)."""
    train = {"max_steps": 8, "checkpoint_every": 1000, "grad_accum": 2}
    over = faulty("crash", at=10, train=train)
    thread = _headless(tiny_config(over))
    t, (code, text) = thread.trainer, thread.outcome()
    crash = t.run_dir / "checkpoints" / "step-0000004-crash.pt"
    assert code == 1 and t.final_state == "failed"
    assert f"crash checkpoint saved: {crash} (step 4)" in text
    assert f"after fixing the cause, resume with: danlu run --resume {t.run_dir}" in text
    err = [a for a in of_type(thread.channel.seen, ev.Alert) if a.kind == "error"][0]
    assert "crash checkpoint saved" in err.message and "danlu run --resume" in err.message
    saved = ckpt.load(crash)
    assert saved["step"] == 4 and saved["batch_in_epoch"] == 8  # step 5's first micro-batch given back
    assert ckpt.find_latest(t.run_dir)[0] == crash

    # the bug fixed, the resume continues from step 4 and lands where a clean run does
    monkeypatch.setenv("DANLU_TEST_FAULT_FIXED", "1")
    resumed, _ = run_trainer(config_for_resume(t.run_dir), resume=t.run_dir)
    assert resumed.final_state == "finished" and resumed.step == 8
    steps = [r["step"] for r in read_jsonl(t.run_dir / "metrics.jsonl") if "loss" in r]
    assert steps == list(range(1, 9))
    clean, _ = run_trainer(tiny_config({**faulty("none", at=1000), "train": train}))
    for a, b in zip(resumed.model.state_dict().values(), clean.model.state_dict().values()):
        assert torch.equal(a, b)


def test_crash_with_nan_weights_writes_no_crash_checkpoint(tiny_config):
    over = faulty("nan", at=3, monitor={"nan_policy": "pause", "log_every": 100},
                  train={"max_steps": 10, "checkpoint_every": 2})
    from danlu.engine.loop.trainer import Trainer
    from .helpers import ScriptedChannel
    ch = ScriptedChannel(resume_when_paused=True)  # space pressed again, the NaN weights kept
    t = Trainer(tiny_config(over), ch)
    ch.trainer = t
    real = t._after_step

    def boom():
        real()
        if t.step == 5:
            raise RuntimeError("user hook failed")

    t._after_step = boom
    assert t.run() == "failed"
    assert not list((t.run_dir / "checkpoints").glob("*crash*"))
    assert any(a.kind == "nonfinite" and "not written" in a.message for a in of_type(ch.seen, ev.Alert))


# --- an interrupted save leaves the previous file loadable ---

def test_a_save_interrupted_midway_leaves_the_previous_last_pt(tmp_path, monkeypatch):
    ck = tmp_path / "checkpoints"
    ck.mkdir()
    last = ck / "last.pt"
    ckpt.atomic_save({"model": {"w": torch.ones(3)}, "step": 1}, last)
    real_save = torch.save

    def dies_midway(obj, f, *a, **k):
        f.write(b"PK\x03\x04 half a checkpoint")  # some bytes reach the file, then the disk fills
        f.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt.torch, "save", dies_midway)
    with pytest.raises(OSError):
        ckpt.atomic_save({"model": {"w": torch.zeros(3)}, "step": 2}, last)
    monkeypatch.setattr(ckpt.torch, "save", real_save)
    assert ckpt.load(last)["step"] == 1
    assert [p.name for p in ck.iterdir()] == ["last.pt"]  # no temp file left behind


def test_a_temp_file_left_by_a_killed_save_is_never_taken_for_a_checkpoint(tmp_path):
    """SIGKILL mid-write leaves the temp file (nothing can clean up): resume ignores it."""
    ck = tmp_path / "checkpoints"
    ck.mkdir()
    ckpt.atomic_save({"model": {"w": torch.ones(3)}, "step": 1}, ck / "last.pt")
    buf = io.BytesIO()
    torch.save({"model": {"w": torch.zeros(3)}, "step": 2}, buf)
    (ck / ".last.pt.abc123.tmp").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    path, obj = ckpt.find_latest(tmp_path)
    assert path.name == "last.pt" and obj["step"] == 1
