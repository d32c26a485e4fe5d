"""Nothing lost: save failures, broken checkpoints, numerical faults, OOM, crashes in user code."""

from __future__ import annotations

import errno
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


def faulty(fault: str, at: int, once: bool = True, **over):
    model = {"name": f"{FAULTY}:build", "args": {"fault": fault, "at": at, "once": once}}
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
