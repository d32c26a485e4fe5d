"""Warm start: a new run (new config, new run directory) from another run's checkpoint."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from danlu.engine.control import events as ev
from danlu.engine.errors import CheckpointError, UserError
from danlu.engine.loop.trainer import Trainer

from .helpers import ScriptedChannel, of_type, run_trainer

SHORT = {"train": {"epochs": 1, "max_steps": 6}}


def parent_run(tiny_config):
    parent, _ = run_trainer(tiny_config(SHORT))
    assert parent.final_state == "finished"
    last = parent.run_dir / "checkpoints" / "last.pt"
    assert last.is_file()
    return parent, last


def warm_trainer(cfg, last):
    ch = ScriptedChannel()
    t = Trainer(cfg, ch, warm_start=last)
    ch.trainer = t
    return t, ch


def events_of(run_dir):
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines() if line.strip()]


def test_batch_size_change_starts_a_new_run_from_the_parent(tiny_config):
    parent, last = parent_run(tiny_config)
    parent_weights = {k: v.clone() for k, v in parent.model.state_dict().items()}
    cfg = tiny_config({"data": {"batch_size": 8}, "train": {"epochs": 2, "max_steps": 10}})
    t, ch = warm_trainer(cfg, last)
    t.setup()
    try:
        assert t.run_dir != parent.run_dir and t.run_dir.is_dir()
        assert t.step == parent.step == 6
        assert t.progress.batch_in_epoch == 0  # positions do not line up with another batch size
        for k, v in t.model.state_dict().items():
            assert torch.equal(v.cpu(), parent_weights[k].cpu()), k
        saved = yaml.safe_load((t.run_dir / "config.yaml").read_text())
        assert saved["run"]["parent"] == str(parent.run_dir.resolve())
        assert saved["run"]["parent_step"] == 6
        assert saved["data"]["batch_size"] == 8
        started = of_type(ch.seen, ev.RunStarted)[0]
        assert started.start_step == 6
        assert "weights, optimizer and schedule restored" in t.warm_note
    finally:
        t._cleanup()
    t2, ch2 = warm_trainer(tiny_config({"data": {"batch_size": 8}, "train": {"epochs": 2, "max_steps": 10}}), last)
    ch2.trainer = t2
    assert t2.run() == "finished"
    assert t2.step == 10
    warm = [e for e in events_of(t2.run_dir) if e["kind"] == "warm_start"]
    assert warm and warm[0]["restored"] == ["weights", "optimizer", "schedule"]
    assert warm[0]["parent_step"] == 6


def test_optimizer_switch_keeps_weights_and_rebuilds_the_optimizer(tiny_config):
    parent, last = parent_run(tiny_config)
    cfg = tiny_config({"optim": {"name": "sgd", "lr": 0.01}, "train": {"epochs": 1, "max_steps": 8}})
    t, ch = warm_trainer(cfg, last)
    assert t.run() == "finished"
    assert t.step == 8
    assert isinstance(t.optimizer, torch.optim.SGD)
    lines = [e.message for e in of_type(ch.seen, ev.LogLine)]
    assert any("weights restored; optimizer state rebuilt because optim.name changed from adamw to sgd" in m
               for m in lines), lines
    text = (t.run_dir / "events.jsonl").read_text()
    assert "warm_start" in text and "optim.name changed from adamw to sgd" in text


def test_a_changed_model_is_a_clear_checkpoint_error(tiny_config):
    parent, last = parent_run(tiny_config)
    runs = set((parent.run_dir.parent).iterdir())
    cfg = tiny_config({"model": {"args": {"width": 16}}})
    t, _ = warm_trainer(cfg, last)
    with pytest.raises(CheckpointError) as info:
        t.setup()
    msg = str(info.value)
    assert "different model" in msg and "shape mismatches" in msg
    assert set(parent.run_dir.parent.iterdir()) == runs  # no half-made run directory left behind
    t._cleanup()


def test_restart_with_a_smaller_batch_counts_the_steps_done_and_the_lr_never_climbs_back(tiny_config):
    """The dashboard's restart with changes, batch 16 -> 8: 6 -> 12 steps per epoch (96 training items)."""
    over = {"data": {"args": {"size": 128}}, "schedule": {"name": "cosine", "warmup_steps": 2},
            "train": {"epochs": 2}}
    parent, _ = run_trainer(tiny_config(over), script={9: [ev.stop(save=True)]})  # 1.5 epochs of 2
    assert parent.step == 9
    last = parent.run_dir / "checkpoints" / "last.pt"
    t, ch = warm_trainer(tiny_config({**over, "data": {"batch_size": 8, "args": {"size": 128}}}), last)
    assert t.run() == "finished"
    # the half-done epoch starts over at the new batch size: 9 + 1 epoch x 12 steps
    assert t.step == 9 + 12
    assert of_type(ch.seen, ev.RunStarted)[0].total_steps == t.step
    parent_lrs = [json.loads(x)["lr"] for x in (parent.run_dir / "metrics.jsonl").read_text().splitlines()
                  if '"lr"' in x]
    lrs = parent_lrs + [json.loads(x)["lr"] for x in (t.run_dir / "metrics.jsonl").read_text().splitlines()
                        if '"lr"' in x]
    peak = lrs.index(max(lrs))
    assert all(b <= a * (1 + 1e-9) for a, b in zip(lrs[peak:], lrs[peak + 1:]))  # down only, to the end
    assert lrs[-1] < 0.01 * max(lrs)
    retimed = [e for e in events_of(t.run_dir) if e["kind"] == "schedule_retimed"]
    assert retimed and retimed[0]["run_total"] == 21


def test_restart_with_a_total_behind_the_parent_is_refused(tiny_config):
    parent, last = parent_run(tiny_config)  # 6 steps
    t, _ = warm_trainer(tiny_config({"train": {"max_steps": 4}}), last)
    with pytest.raises(UserError, match="train.max_steps=4 is behind the run, which is at step 6"):
        t.run()


def test_warm_start_from_a_run_directory_uses_its_newest_checkpoint(tiny_config):
    parent, _ = parent_run(tiny_config)
    t, _ = warm_trainer(tiny_config({"train": {"max_steps": 9}}), parent.run_dir)
    assert t.run() == "finished" and t.step == 9
    assert t.cfg.run.parent == str(parent.run_dir.resolve()) and t.cfg.run.parent_step == 6


def test_a_rebuilt_schedule_starts_from_the_edited_lr_and_runs_over_the_steps_left(tiny_config):
    over = {"schedule": {"name": "cosine", "warmup_steps": 2}, "train": {"epochs": 1, "max_steps": 6}}
    parent, _ = run_trainer(tiny_config(over))
    edited = tiny_config({**over, "optim": {"lr": 0.001}, "train": {"epochs": 1, "max_steps": 12}})
    t, ch = warm_trainer(edited, parent.run_dir / "checkpoints" / "last.pt")
    assert t.run() == "finished" and t.step == 12
    lrs = [json.loads(x)["lr"] for x in (t.run_dir / "metrics.jsonl").read_text().splitlines() if '"lr"' in x]
    assert len(lrs) == 6
    assert max(lrs) == pytest.approx(0.001)  # its warmup reaches the edited LR, not a fraction of it
    assert lrs[-1] < 0.2 * 0.001  # and its cosine ends with the run
    assert "a new one" not in t.warm_note and "it runs over the 6 steps left" in t.warm_note
