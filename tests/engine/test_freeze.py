"""Freeze and unfreeze: the optimizer and the schedule take in new groups correctly, for every optimizer
and several schedulers; the live commands answer with what changed; a resume rebuilds the same groups."""

from __future__ import annotations

import pytest
import torch

from danlu.engine.build.freeze import Transfer, freeze_at_start
from danlu.engine.build.optim import build_optimizer
from danlu.engine.build.schedule import LRSchedule
from danlu.engine.config.files import config_for_resume
from danlu.engine.config.knobs import OPTIMIZERS
from danlu.engine.config.schema import from_dict
from danlu.engine.control import events as ev
from danlu.engine.errors import ConfigError, UserError
from danlu.engine.store.runlog import read_jsonl

from .helpers import of_type, run_trainer

SCHEDS = {
    "cosine": {"name": "cosine", "warmup_steps": 3},
    "onecycle": {"name": "onecycle"},
    "step": {"name": "step", "step_size": 4, "gamma": 0.5, "interval": "step"},
    "cosine_restarts": {"name": "cosine_restarts", "T_0": 1},
    "plateau": {"name": "plateau", "patience": 0, "threshold": 1.0},  # cuts at every evaluation
}


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def _setup(opt_name, sched):
    if sched.get("name") == "onecycle" and opt_name in ("adagrad", "adadelta"):
        sched = {**sched, "cycle_momentum": False}  # they have no momentum or beta1 to cycle
    cfg = from_dict({"optim": {"name": opt_name, "lr": 0.01}, "schedule": sched})
    model = _net()
    freeze_at_start(model, [r"^0\."])
    opt = build_optimizer(model, cfg.optim)
    return model, opt, LRSchedule(opt, cfg.schedule, steps_per_epoch=4, total_steps=24)


def _step(model, opt, sched):
    x = torch.randn(8, 4)
    loss = model(x).pow(2).mean()
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    sched.on_step()
    if sched.step_count % 4 == 0:
        sched.on_epoch_end()
        sched.on_eval(loss.item())


@pytest.mark.parametrize("sched", list(SCHEDS))
@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_unfrozen_group_follows_the_schedule_at_its_lr_mult(opt_name, sched):
    model, opt, schedule = _setup(opt_name, SCHEDS[sched])
    for _ in range(5):
        _step(model, opt, schedule)
    before = [p.detach().clone() for p in model[0].parameters()]
    done = Transfer(model).unfreeze(opt, schedule, r"^0\.", lr_mult=0.5)
    assert (done.tensors, done.params) == (2, 40)
    assert [g["name"] for g in opt.param_groups[-2:]] == [r"unfreeze:^0\.", r"unfreeze:^0\./no_decay"]
    for _ in range(12):
        lrs = schedule.lrs()
        assert lrs[-1] == pytest.approx(lrs[0] * 0.5, rel=1e-9) and lrs[-2] == pytest.approx(lrs[0] * 0.5)
        _step(model, opt, schedule)
    assert all(not torch.equal(a, b) for a, b in zip(before, model[0].parameters()))  # they train now
    if sched == "plateau":
        assert schedule.lrs()[0] < 0.01 * 0.5 ** 3  # it did cut, the new group with the rest
    if sched == "onecycle" and "momentum" in opt.param_groups[0]:
        assert opt.param_groups[-1]["momentum"] == opt.param_groups[0]["momentum"]  # cycled alike
    # a person's LR change covers the new group, and a per-group change reaches it alone
    old = schedule.lrs()
    schedule.set_lr(factor=0.5)
    assert schedule.lrs() == pytest.approx([x * 0.5 for x in old])
    schedule.set_lr(value=1e-4, group=len(opt.param_groups) - 1, mode="override")
    assert schedule.lrs()[-1] == pytest.approx(1e-4) and schedule.lrs()[0] == pytest.approx(old[0] * 0.5)


def test_weight_decay_stays_off_the_no_decay_group_and_frozen_params_do_not_move():
    model, opt, schedule = _setup("adamw", {"name": "none"})
    frozen = [p.detach().clone() for p in model[0].parameters()]
    _step(model, opt, schedule)
    assert all(torch.equal(a, b) for a, b in zip(frozen, model[0].parameters()))
    Transfer(model).unfreeze(opt, schedule, r"^0\.", lr_mult=2)
    assert opt.param_groups[-1]["weight_decay"] == 0.0 and opt.param_groups[-2]["weight_decay"] == 0.01
    t = Transfer(model)
    done = t.freeze(opt, r"^2\.")
    assert (done.tensors, done.params) == (2, 18)
    head = [p.detach().clone() for p in model[2].parameters()]
    _step(model, opt, schedule)
    assert all(torch.equal(a, b) for a, b in zip(head, model[2].parameters()))  # frozen: no decay either
    with pytest.raises(ValueError, match="every trainable parameter"):
        t.freeze(opt, ".")


def test_a_regex_matching_nothing_names_close_names():
    from danlu.engine.build.freeze import check_unfreeze
    from danlu.engine.build.models import SmallCNN
    with pytest.raises(UserError, match=r"model.freeze\[0\]: 'featurs' matches no parameter; close names: .*features"):
        freeze_at_start(SmallCNN(3, 4, width=4), ["featurs"])
    model = SmallCNN(3, 4, width=4)
    freeze_at_start(model, [r"^features\."])
    with pytest.raises(UserError, match=r"model.unfreeze\[1\].match: '\^features\\.3' matches no parameter"):
        check_unfreeze(model, [{"match": "^features"}, {"match": r"^features\.3"}])
    with pytest.raises(UserError, match="matches only trainable parameters"):
        check_unfreeze(model, [{"match": "head"}])
    with pytest.raises(ConfigError, match=r"model.unfreeze\[0\].at_epoch: must be set"):
        from_dict({"model": {"freeze": ["x"], "unfreeze": [{"match": "x"}]}})


BACKBONE = {"model": {"freeze": [r"^features\."], "unfreeze": [{"at_epoch": 1, "match": r"^features\.",
                                                                 "lr_mult": 0.1}]},
            "schedule": {"name": "cosine"}, "train": {"epochs": 2},
            "data": {"args": {"size": 96, "image_size": 16}}, "monitor": {"layer_norms_every": 2}}


def test_scheduled_unfreeze_and_resume_rebuild_the_same_groups(tiny_config):
    full, ch = run_trainer(tiny_config(BACKBONE))
    assert full.final_state == "finished"
    changed = of_type(ch.seen, ev.ParamsChanged)
    assert len(changed) == 1 and changed[0].op == "unfreeze" and changed[0].step == full.plan.steps_per_epoch
    assert changed[0].trainable == changed[0].total
    started = of_type(ch.seen, ev.RunStarted)[0]
    assert started.trainable_params < started.num_params
    lrs = [r["lrs"] for r in read_jsonl(full.run_dir / "metrics.jsonl") if "lrs" in r]
    assert len(lrs[0]) == 2 and len(lrs[-1]) == 4
    assert lrs[-1][2] == pytest.approx(lrs[-1][0] * 0.1)
    norms = [r["layer_norms"] for r in read_jsonl(full.run_dir / "metrics.jsonl") if "layer_norms" in r]
    assert norms[0]["features.0.0"] == 0 and norms[-1]["features.0.0"] > 0  # tracked from the start

    spe = full.plan.steps_per_epoch
    cut, _ = run_trainer(tiny_config(BACKBONE), script={spe + 2: [ev.stop(save=True)]})
    resumed, _ = run_trainer(config_for_resume(cut.run_dir), resume=cut.run_dir)
    assert resumed.final_state == "finished"
    assert len(resumed.optimizer.param_groups) == 4
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)


def test_live_freeze_and_unfreeze_answer_with_counts(tiny_config):
    t, ch = run_trainer(tiny_config({"train": {"max_steps": 6}, "data": {"args": {"size": 96, "image_size": 16}}}), script={
        2: [ev.freeze(r"^features\."), ev.freeze("nomatch"), ev.unfreeze(r"^features\.0\.", lr_mult="x")],
        4: [ev.unfreeze(r"^features\.0\.", lr_mult=0.5)]})
    applied = of_type(ch.seen, ev.CommandApplied)
    rejected = of_type(ch.seen, ev.CommandRejected)
    assert [a.kind for a in applied] == ["freeze", "unfreeze"]
    total = sum(p.numel() for p in t.model.parameters())
    head = sum(p.numel() for p in t.model.head.parameters())
    assert applied[0].old == total and applied[0].new == head
    assert "froze 12 tensors" in applied[0].detail
    assert applied[1].step == 4 and "rejoined their old group" in applied[1].detail
    assert {r.reason.split(":")[0] for r in rejected} == {"freeze", "lr_mult must be a number > 0, got 'x'"}
    marks = of_type(ch.seen, ev.ParamsChanged)
    assert [(m.step, m.op) for m in marks] == [(2, "freeze"), (4, "unfreeze")]


def test_a_live_unfreeze_survives_a_resume(tiny_config):
    over = {"model": {"freeze": [r"^features\."]}, "train": {"max_steps": 8},
            "data": {"args": {"size": 96, "image_size": 16}}, "schedule": {"name": "onecycle"}}
    live = {2: [ev.unfreeze(r"^features\.[45]\.", lr_mult=0.3), ev.freeze(r"^head\.")]}
    full, _ = run_trainer(tiny_config(over), script=live)
    cut, _ = run_trainer(tiny_config(over), script={**live, 5: [ev.stop(save=True)]})
    resumed, _ = run_trainer(config_for_resume(cut.run_dir), resume=cut.run_dir)
    assert resumed.final_state == "finished" and resumed.step == 8
    assert [g["name"] for g in resumed.optimizer.param_groups] == [g["name"] for g in full.optimizer.param_groups]
    assert [p.requires_grad for p in resumed.model.parameters()] == [p.requires_grad for p in full.model.parameters()]
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
