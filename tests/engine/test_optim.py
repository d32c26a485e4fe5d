"""build_optimizer's param groups and set_hparam's hot changes."""

from __future__ import annotations

from types import SimpleNamespace as NS

import pytest
import torch
from torch import nn

from danlu.engine.errors import UserError
from danlu.engine.config.knobs import OPTIMIZERS, optimizer_defaults, scheduler_defaults
from danlu.engine.build.optim import build_optimizer, set_hparam
from danlu.engine.build.schedule import LRSchedule


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU())
        self.head = nn.Linear(2 * 4 * 4, 3)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


def cfg(name="adamw", lr=1e-3, no_decay=False, rules=(), **args):
    a = optimizer_defaults(name)
    if "betas" in a:
        a["betas"] = list(a["betas"])  # YAML gives lists; build_optimizer must pass a tuple
    a.update(args)
    return NS(name=name, lr=lr, args=a, no_decay_bias_norm=no_decay, param_groups=list(rules))


def train_step(model, opt):
    torch.manual_seed(0)
    loss = model(torch.randn(4, 1, 6, 6)).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()


def by_name(opt):
    return {g["name"]: g for g in opt.param_groups}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_optimizer_builds_with_defaults_and_steps(name):
    model = Net()
    opt = build_optimizer(model, cfg(name, lr=OPTIMIZERS[name][1]))
    assert type(opt).__name__ == OPTIMIZERS[name][0]
    if "betas" in opt.defaults:
        assert isinstance(opt.param_groups[0]["betas"], tuple)
    before = model.head.weight.detach().clone()
    train_step(model, opt)
    assert not torch.equal(before, model.head.weight)


def test_param_groups_regex_and_lr_mult():
    model = Net()
    opt = build_optimizer(model, cfg(lr=0.01, rules=[{"match": r"^head\.", "lr_mult": 10},
                                                     {"match": r"features\.1", "name": "bn", "lr_mult": 0.5}]))
    g = by_name(opt)
    assert list(g) == ["default", "^head\\.", "bn"]
    assert g["default"]["lr"] == pytest.approx(0.01)
    assert g["^head\\."]["lr"] == pytest.approx(0.1)
    assert g["bn"]["lr"] == pytest.approx(0.005)
    assert g["^head\\."]["lr_mult"] == 10
    assert {id(p) for p in g["^head\\."]["params"]} == {id(model.head.weight), id(model.head.bias)}
    assert {id(p) for p in g["bn"]["params"]} == {id(p) for p in model.features[1].parameters()}


def test_first_matching_rule_wins_and_frozen_params_are_left_out():
    model = Net()
    model.features[0].bias.requires_grad_(False)
    opt = build_optimizer(model, cfg(rules=[{"match": "weight", "lr_mult": 2}, {"match": "head"}]))
    g = by_name(opt)
    assert {id(p) for p in g["head"]["params"]} == {id(model.head.bias)}
    assert sum(len(x["params"]) for x in opt.param_groups) == 5


def test_no_decay_bias_norm_twin_groups():
    model = Net()
    opt = build_optimizer(model, cfg("adamw", lr=1e-3, no_decay=True, weight_decay=0.05,
                                     rules=[{"match": "head", "lr_mult": 10, "weight_decay": 0.1}]))
    g = by_name(opt)
    assert list(g) == ["default", "default/no_decay", "head", "head/no_decay"]
    nd = {id(p) for p in g["default/no_decay"]["params"]}
    assert nd == {id(model.features[0].bias), id(model.features[1].weight), id(model.features[1].bias)}
    assert g["default"]["weight_decay"] == 0.05
    assert g["default/no_decay"]["weight_decay"] == 0.0
    assert g["head"]["weight_decay"] == 0.1
    assert g["head/no_decay"]["weight_decay"] == 0.0
    assert g["head/no_decay"]["lr"] == pytest.approx(1e-2)


def test_empty_groups_are_dropped():
    model = nn.Linear(3, 3, bias=False)
    opt = build_optimizer(model, cfg(no_decay=True))
    assert [x["name"] for x in opt.param_groups] == ["default"]


def test_rule_matching_nothing_is_a_user_error():
    with pytest.raises(UserError, match=r"optim.param_groups\[0\].match: 'classifier' matches no parameter; "
                                        r"names look like: features.0.weight, features.0.bias"):
        build_optimizer(Net(), cfg(rules=[{"match": "classifier"}]))


def test_bad_regex_and_shadowed_rule_are_user_errors():
    with pytest.raises(UserError, match=r"param_groups\[0\].match: '\(head' is not a valid regular expression"):
        build_optimizer(Net(), cfg(rules=[{"match": "(head"}]))
    with pytest.raises(UserError, match=r"param_groups\[1\].*earlier rule already took"):
        build_optimizer(Net(), cfg(rules=[{"match": "head"}, {"match": r"head\.bias"}]))


# --- set_hparam -----------------------------------------------------------------


def test_weight_decay_for_all_groups_spares_no_decay_groups():
    opt = build_optimizer(Net(), cfg("adamw", no_decay=True))
    old, new = ch = set_hparam(opt, "weight_decay", 0.1)
    assert old == [0.01, 0.0] and new == [0.1, 0.0]
    assert "default/no_decay" in ch.detail
    old, new = set_hparam(opt, "weight_decay", 0.001, group=1)
    assert new == [0.1, 0.001]


def test_weight_decay_rejections():
    opt = build_optimizer(Net(), cfg("sgd", lr=0.1))
    with pytest.raises(ValueError, match=r"weight_decay: must be >= 0, got -1 \(weight_decay takes a number in \[0, 1\]\)"):
        set_hparam(opt, "weight_decay", -1)
    with pytest.raises(ValueError, match="weight_decay: must be <= 1, got 5"):
        set_hparam(opt, "weight_decay", 5)
    with pytest.raises(ValueError, match="group 3 does not exist; groups are: 0 default"):
        set_hparam(opt, "weight_decay", 0.1, group=3)


def test_momentum_sgd_and_rmsprop():
    opt = build_optimizer(Net(), cfg("sgd", lr=0.1))
    assert set_hparam(opt, "momentum", 0.9) == ([0.0], [0.9])
    assert opt.param_groups[0]["momentum"] == 0.9

    model = Net()
    opt = build_optimizer(model, cfg("rmsprop", lr=0.01))
    train_step(model, opt)  # state now exists without momentum buffers
    set_hparam(opt, "momentum", 0.5)
    train_step(model, opt)  # would KeyError if the buffers were not created


def test_momentum_on_adam_family_sets_beta1_and_says_so():
    opt = build_optimizer(Net(), cfg("adamw"))
    ch = set_hparam(opt, "momentum", 0.95)
    assert tuple(ch) == ([0.9], [0.95])
    assert opt.param_groups[0]["betas"] == (0.95, 0.999)
    assert "adamw has no momentum; set beta1" in ch.detail


def test_betas():
    opt = build_optimizer(Net(), cfg("adam", no_decay=True))
    old, new = set_hparam(opt, "betas", [0.8, 0.99], group=0)
    assert old == [[0.9, 0.999], [0.9, 0.999]] and new == [[0.8, 0.99], [0.9, 0.999]]
    assert opt.param_groups[0]["betas"] == (0.8, 0.99)


@pytest.mark.parametrize("opt_name, name, value, message", [
    ("sgd", "momentum", 1.5, r"momentum: must be < 1, got 1.5 \(momentum takes a number in \[0, 1\)\)"),
    ("sgd", "momentum", 1.0, r"momentum: must be < 1, got 1"),
    ("sgd", "momentum", "fast", "momentum: must be a number, got 'fast'"),
    ("sgd", "betas", [0.9, 0.99], "betas: sgd has no betas; set momentum instead"),
    ("adagrad", "momentum", 0.9, "momentum: adagrad has neither momentum nor betas"),
    ("adam", "betas", [0.9], r"betas: must be a pair like \[0.9, 0.999\]"),
    ("adam", "betas", [0.9, 1.0], r"betas\[1\]: must be < 1, got 1"),
    ("adam", "grad_clip", 1.0, "grad_clip is not an optimizer setting"),
    ("adam", "eps", 1e-6, "'eps' cannot change mid-run; hot settings are"),
])
def test_set_hparam_rejections(opt_name, name, value, message):
    opt = build_optimizer(Net(), cfg(opt_name, lr=0.01))
    with pytest.raises(ValueError, match=message):
        set_hparam(opt, name, value)


def test_nesterov_needs_momentum():
    opt = build_optimizer(Net(), cfg("sgd", momentum=0.9, nesterov=True))
    with pytest.raises(ValueError, match="nesterov=true needs momentum > 0"):
        set_hparam(opt, "momentum", 0.0)


def test_onecycle_owns_momentum():
    opt = build_optimizer(Net(), cfg("adamw"))
    sc = NS(name="onecycle", warmup_steps=0, warmup_start_factor=0.0, interval=None,
            args=scheduler_defaults("onecycle"))
    sched = LRSchedule(opt, sc, 10, 100)
    for name, value in (("momentum", 0.9), ("betas", [0.9, 0.99])):
        with pytest.raises(ValueError, match="onecycle cycles momentum every step; set schedule.cycle_momentum=false"):
            set_hparam(opt, name, value, schedule=sched)
    set_hparam(opt, "weight_decay", 0.1, schedule=sched)  # not momentum: allowed
    sc.args = {**sc.args, "cycle_momentum": False}
    sched = LRSchedule(build_optimizer(Net(), cfg("adamw")), sc, 10, 100)
    set_hparam(sched.optimizer, "momentum", 0.9, schedule=sched)
