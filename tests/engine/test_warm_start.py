"""Warm start: a new run (new config, new run directory) from another run's checkpoint."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from danlu.engine.control import events as ev
from danlu.engine.errors import CheckpointError
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
