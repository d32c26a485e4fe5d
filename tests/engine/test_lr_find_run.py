"""The LR range test on a live run: on a copy, with its own batches, the run unharmed."""

from __future__ import annotations

import json

import pytest
import torch

from danlu.engine.control import events as ev
from danlu.engine.loop import lr_find_run
from danlu.engine.store.runlog import read_jsonl

from .helpers import of_type, run_trainer


def _weights(t):
    return {k: v.detach().clone() for k, v in t.model.state_dict().items()}


def test_a_run_that_did_a_mid_run_test_ends_bit_identical_to_one_that_did_not(tiny_config):
    # small_cnn has dropout: the test's own steps draw from the global RNG, which must be put back
    over = {"train": {"max_steps": 20}, "model": {"args": {"width": 8, "dropout": 0.3}}}
    plain, _ = run_trainer(tiny_config(over))
    tested, ch = run_trainer(tiny_config(over), script={7: [ev.lr_find(1e-5, 1.0, 15), ev.resume()]})
    done = of_type(ch.seen, ev.LrFindDone)
    assert len(done) == 1 and done[0].step == 7 and len(done[0].lrs) >= 10
    assert tested.step == plain.step == 20
    a, b = _weights(plain), _weights(tested)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the optimizer's state too (Adam's moments, its step count)
    sa, sb = plain.optimizer.state_dict()["state"], tested.optimizer.state_dict()["state"]
    for i in sa:
        for name in sa[i]:
            assert torch.equal(sa[i][name], sb[i][name]), (i, name)


def test_the_result_is_saved_in_the_run_and_recorded_as_an_event(tiny_config):
    t, ch = run_trainer(tiny_config({"train": {"max_steps": 6}}), script={3: [ev.lr_find(1e-5, 1.0, 12)]},
                        resume_when_paused=True)
    path = t.run_dir / "lr_find" / "step-3.json"
    data = json.loads(path.read_text())
    assert data["step"] == 3 and len(data["lrs"]) == len(data["losses"]) and data["rule"]
    assert data["memory"]["total"] > 0
    events = [e for e in read_jsonl(t.run_dir / "events.jsonl") if e["kind"] == "lr_find"]
    assert len(events) == 1 and events[0]["step"] == 3 and events[0]["path"] == str(path)
    applied = [e for e in of_type(ch.seen, ev.CommandApplied) if e.kind == "lr_find"]
    assert applied and applied[0].new == data["suggestion"]
    assert "paused" in applied[0].detail
    status = [e for e in of_type(ch.seen, ev.StatusChanged) if e.step == 3]
    assert "LR range test on a copy" in status[0].detail and "test is done" in status[1].detail


def test_check_states_the_memory_without_running_or_pausing(tiny_config):
    t, ch = run_trainer(tiny_config({"train": {"max_steps": 4}}), script={2: [ev.lr_find(check=True)]})
    applied = [e for e in of_type(ch.seen, ev.CommandApplied) if e.kind == "lr_find"][0]
    n = sum(p.numel() for p in t.model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in t.model.buffers())  # batch norm's running stats
    # a copy of the weights (fp32) and buffers, their grads, Adam's two moments
    assert applied.new["weights"] == n * 4 + buffers and applied.new["grads"] == n * 4
    assert applied.new["optimizer"] >= 2 * n * 4 and applied.new["fits"] is True
    assert not of_type(ch.seen, ev.LrFindDone) and not (t.run_dir / "lr_find").exists()
    assert t.final_state == "finished"


def test_a_test_that_cannot_fit_is_refused_and_the_run_goes_on(tiny_config, monkeypatch):
    monkeypatch.setattr(lr_find_run, "free_memory", lambda device: 1000)
    t, ch = run_trainer(tiny_config({"train": {"max_steps": 4}}), script={2: [ev.lr_find()]})
    rejected = [e for e in of_type(ch.seen, ev.CommandRejected) if e.kind == "lr_find"]
    assert rejected and "only 0.0 MiB is free" in rejected[0].reason and "not run" in rejected[0].reason
    assert not t.paused and t.final_state == "finished"


@pytest.mark.parametrize("args, words", [(dict(start=1.0, end=0.1), "0 < start < end"),
                                         (dict(steps=3), "at least 10 steps")])
def test_a_nonsense_sweep_is_refused_before_the_run_pauses(tiny_config, args, words):
    t, ch = run_trainer(tiny_config({"train": {"max_steps": 4}}), script={2: [ev.lr_find(**args)]})
    rejected = [e for e in of_type(ch.seen, ev.CommandRejected) if e.kind == "lr_find"]
    assert rejected and words in rejected[0].reason
    assert t.final_state == "finished"


def test_rng_states_are_saved_and_put_back():
    import random
    s = lr_find_run.rng_state()
    a = (random.random(), torch.rand(1).item())
    lr_find_run.set_rng_state(s)
    assert (random.random(), torch.rand(1).item()) == a


def test_two_tests_at_the_same_step_give_the_same_curve(tiny_config):
    # nothing of the first test (grads, optimizer state, RNG draws, data order) leaks into the second
    t, ch = run_trainer(tiny_config({"train": {"max_steps": 6}, "model": {"args": {"width": 8, "dropout": 0.3}}}),
                        script={4: [ev.lr_find(1e-4, 1.0, 12), ev.lr_find(1e-4, 1.0, 12), ev.resume()]})
    a, b = of_type(ch.seen, ev.LrFindDone)
    assert a.step == b.step == 4 and a.losses == b.losses and a.suggestion == b.suggestion
    assert t.final_state == "finished" and t.step == 6


def test_a_model_that_cannot_be_copied_is_refused_and_the_run_is_unharmed(tiny_config, monkeypatch):
    def refuse(obj, memo=None):
        raise TypeError("cannot pickle 'generator' object")

    monkeypatch.setattr(lr_find_run, "deepcopy", refuse)
    t, ch = run_trainer(tiny_config({"train": {"max_steps": 4}}), script={2: [ev.lr_find(1e-4, 1.0, 12)]},
                        resume_when_paused=True)
    rejected = [e for e in of_type(ch.seen, ev.CommandRejected) if e.kind == "lr_find"]
    assert rejected and "cannot be copied" in rejected[0].reason and "danlu lr-find" in rejected[0].reason
    assert t.final_state == "finished" and t.step == 4
