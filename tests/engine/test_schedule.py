"""LRSchedule against torch's own schedulers stepped by hand, plus set_lr, resume and preview."""

from __future__ import annotations

import io
import math
import warnings
from types import SimpleNamespace as NS

import pytest
import torch

from danlu.engine.errors import CheckpointError, UserError
from danlu.engine.config.knobs import SCHEDULERS, scheduler_defaults
from danlu.engine.build.schedule import LRSchedule, preview

SPE, TOTAL = 10, 60
LAMBDAS = __file__.rsplit("/", 1)[0] + "/lambda_fns.py"
BASE = (0.1, 0.01)                  # two groups, so differential LRs are checked too
VAL = [1.0, 0.9, 0.95, 0.97, 0.5, 0.8, 0.9]   # one per epoch end; plateau reduces on the bad ones

# Arguments that make each curve move within 60 steps; derived ones stay None.
ARGS = {
    "step": {"step_size": 2, "gamma": 0.5},
    "multistep": {"milestones": [2, 4], "gamma": 0.5},
    "exponential": {"gamma": 0.8},
    "cosine_restarts": {"T_0": 2, "T_mult": 2},
    "plateau": {"patience": 0, "factor": 0.5},
    "lambda": {"fn": LAMBDAS + ":decay_10pct"},
}
# (name, interval): every scheduler at its default interval, and the other unit where it means something.
CASES = [(n, None) for n in SCHEDULERS] + [("cosine", "epoch"), ("cosine_restarts", "step"), ("step", "step"),
                                           ("lambda", "epoch")]
WARMUPS = [(0, 0.0), (7, 0.0), (12, 0.25)]   # 7: warmup ends mid-epoch


def sched_cfg(name, warmup=0, start=0.0, interval=None, **over):
    args = scheduler_defaults(name)
    args.update(ARGS.get(name, {}))
    args.update(over)
    return NS(name=name, warmup_steps=warmup, warmup_start_factor=start, interval=interval, args=args)


def make_opt():
    ps = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))]
    return torch.optim.SGD([{"params": [ps[0]], "lr": BASE[0], "lr_mult": 1.0},
                            {"params": [ps[1]], "lr": BASE[1], "lr_mult": 0.1}], lr=BASE[0], momentum=0.9)


def drive(sched, opt, start, stop, actions=None):
    """LRs (all groups) used at steps [start, stop), with actions[s](sched) applied just before step s."""
    out = []
    for s in range(start, stop):
        if actions and s in actions:
            actions[s](sched)
        out.append(sched.lrs())
        opt.step()
        sched.on_step()
        if (s + 1) % SPE == 0:
            sched.on_epoch_end()
            sched.on_eval(VAL[((s + 1) // SPE - 1) % len(VAL)])
    return out


def trace(cfg, actions=None):
    opt = make_opt()
    sched = LRSchedule(opt, cfg, SPE, TOTAL)
    return drive(sched, opt, 0, TOTAL, actions)


def reference(cfg):
    """torch's scheduler stepped by hand at its documented granularity, with warmup in front."""
    opt = make_opt()
    cls_name, default_interval, _ = SCHEDULERS[cfg.name]
    interval = "eval" if cfg.name == "plateau" else (cfg.interval or default_interval)
    w = cfg.warmup_steps
    args = {k: v for k, v in cfg.args.items() if v is not None}
    epochs = math.ceil(TOTAL / SPE)
    left = epochs - w // SPE if interval == "epoch" else TOTAL - w
    if cfg.name == "cosine":
        args["T_max"] = left
    if cfg.name == "onecycle":
        args.update(total_steps=left, max_lr=list(BASE))
    if cfg.name == "lambda":
        from danlu.engine.build.imports import resolve_target
        args["lr_lambda"] = resolve_target(args.pop("fn"), "schedule.fn")
    sched = getattr(torch.optim.lr_scheduler, cls_name)(opt, **args) if cls_name else None
    out = []
    for s in range(TOTAL):
        f = 1.0 if s >= w else cfg.warmup_start_factor + (1 - cfg.warmup_start_factor) * (s + 1) / w
        out.append([g["lr"] * f for g in opt.param_groups])
        opt.step()
        n = s + 1
        if sched is not None and n > w:
            if interval == "step":
                sched.step()
            elif cfg.name == "cosine_restarts":
                sched.step((n - w) / SPE)   # torch docs: fractional epochs, stepped every batch
        if n % SPE == 0 and sched is not None and n > w:
            if interval == "epoch" and cfg.name != "cosine_restarts":
                sched.step()
            if interval == "eval":
                sched.step(VAL[n // SPE - 1])
    return out


def close(a, b):
    assert len(a) == len(b)
    for s, (x, y) in enumerate(zip(a, b)):
        assert x == pytest.approx(y, rel=1e-9, abs=1e-15), f"step {s}: {x} != {y}"


def flat(trace_, g=0):
    return [row[g] for row in trace_]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # a torch warning here means we drive it wrong
        yield


# --- (a) the curve is torch's ----------------------------------------------------


@pytest.mark.parametrize("warmup,start", WARMUPS)
@pytest.mark.parametrize("name,interval", CASES)
def test_curve_matches_torch(name, interval, warmup, start):
    cfg = sched_cfg(name, warmup, start, interval)
    got = trace(cfg)
    close(got, reference(cfg))
    close(flat(got), preview(cfg, BASE[0], SPE, TOTAL, VAL))
    if warmup:
        first = start + (1 - start) / warmup   # the first warmup step already learns
        assert got[0][0] == pytest.approx(BASE[0] * first if name != "onecycle" else BASE[0] / 25 * first)
    assert len(set(round(x, 12) for x in flat(got))) >= (1 if name == "none" and not warmup else 3)


def test_known_values():
    got = flat(trace(sched_cfg("cosine", warmup=10)))
    assert got[:11] == pytest.approx([BASE[0] * s / 10 for s in range(1, 11)] + [BASE[0]])
    assert got[35] == pytest.approx(BASE[0] * (1 + math.cos(math.pi * 25 / 50)) / 2)
    got = flat(trace(sched_cfg("step")))   # step_size 2 epochs, gamma 0.5
    assert got[19] == pytest.approx(0.1) and got[20] == pytest.approx(0.05) and got[59] == pytest.approx(0.025)


# --- (b) rescale, (c) override ----------------------------------------------------


@pytest.mark.parametrize("k", [3, 25])
@pytest.mark.parametrize("name,interval", CASES)
def test_rescale_keeps_the_shape(name, interval, k):
    cfg = sched_cfg(name, 7, 0.0, interval)
    orig = trace(cfg)
    got = trace(cfg, {k: lambda s: s.set_lr(0.03)})
    ratio = 0.03 / orig[k][0]
    assert got[k][0] == pytest.approx(0.03, rel=1e-12)
    close(got[:k], orig[:k])
    close(got[k:], [[x * ratio for x in row] for row in orig[k:]])
    got = trace(cfg, {k: lambda s: s.set_lr(factor=0.5, group=1)})
    close([r[1] for r in got[k:]], [r[1] * 0.5 for r in orig[k:]])
    close(flat(got), flat(orig))


@pytest.mark.parametrize("name,interval", CASES)
def test_override_holds_then_rescale_rejoins(name, interval):
    cfg = sched_cfg(name, 7, 0.0, interval)
    orig = trace(cfg)
    got = trace(cfg, {20: lambda s: s.set_lr(0.002, group=1, mode="override")})
    assert all(r[1] == 0.002 for r in got[20:])
    close(flat(got), flat(orig))
    rejoin = {20: lambda s: s.set_lr(0.002, group=1, mode="override"),
              40: lambda s: s.set_lr(factor=2.0, group=1)}
    got = trace(cfg, rejoin)
    ratio = 0.004 / orig[40][1]
    close([r[1] for r in got[40:]], [r[1] * ratio for r in orig[40:]])

    got = trace(cfg, {3: lambda s: s.set_lr(0.05, mode="override")})   # all groups, ratio kept
    assert all(r == pytest.approx([0.05, 0.05 * orig[3][1] / orig[3][0]]) for r in got[3:])


def test_phase_and_describe():
    opt = make_opt()
    sched = LRSchedule(opt, sched_cfg("onecycle", warmup=5), SPE, TOTAL)
    assert sched.describe() == "onecycle, warmup 5 steps"
    seen = []
    for _ in range(TOTAL):
        seen.append(sched.phase)
        opt.step()
        sched.on_step()
    assert seen[:5] == ["warmup"] * 5 and seen[5] == "rise" and seen[-1] == "decay"
    sched.set_lr(0.01, mode="override")
    assert sched.phase == "override"
    none = LRSchedule(make_opt(), sched_cfg("none"), SPE, TOTAL)
    assert none.phase == "constant" and none.describe() == "constant"
    assert LRSchedule(make_opt(), sched_cfg("cosine", interval="epoch"), SPE, TOTAL).describe() == "cosine per epoch"


# --- (d) resume -----------------------------------------------------------------------


def roundtrip(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("k", [4, 33])
@pytest.mark.parametrize("name,interval", CASES)
def test_resume_continues_exactly(name, interval, k):
    cfg = sched_cfg(name, 7, 0.0, interval)
    actions = {2: lambda s: s.set_lr(factor=0.5), 30: lambda s: s.set_lr(0.001, group=1, mode="override"),
               40: lambda s: s.set_lr(factor=3.0)}
    full = trace(cfg, actions)

    opt = make_opt()
    sched = LRSchedule(opt, cfg, SPE, TOTAL)
    head = drive(sched, opt, 0, k, actions)
    momentum = opt.param_groups[0]["momentum"]   # onecycle cycles it
    saved = roundtrip({"opt": opt.state_dict(), "sched": sched.state_dict()})

    opt2 = make_opt()
    sched2 = LRSchedule(opt2, cfg, SPE, TOTAL)
    opt2.load_state_dict(saved["opt"])
    sched2.load_state_dict(saved["sched"])
    assert opt2.param_groups[0]["momentum"] == momentum
    tail = drive(sched2, opt2, k, TOTAL, actions)
    close(head + tail, full)


def test_resume_refuses_another_schedule():
    sd = LRSchedule(make_opt(), sched_cfg("cosine"), SPE, TOTAL).state_dict()
    with pytest.raises(CheckpointError, match="the checkpoint's schedule is 'cosine' but the config says 'step'"):
        LRSchedule(make_opt(), sched_cfg("step"), SPE, TOTAL).load_state_dict(sd)


# --- (e) bad input ----------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, message", [
    ({"value": 0}, "lr must be a finite number > 0, got 0"),
    ({"value": -1e-3}, "lr must be a finite number > 0"),
    ({"value": float("nan")}, "lr must be a finite number > 0, got nan"),
    ({"factor": float("inf")}, "factor must be a finite number > 0, got inf"),
    ({"value": "fast"}, "lr must be a number > 0, got 'fast'"),
    ({}, "give exactly one of value or factor"),
    ({"value": 0.1, "factor": 2}, "give exactly one of value or factor"),
    ({"value": 0.1, "group": 2}, "group 2 does not exist; groups are: 0, 1"),
    ({"value": 0.1, "mode": "hold"}, "mode must be one of rescale, override, got 'hold'"),
    ({"value": 50}, "lr 50 looks like a typo; max is 10"),
    ({"factor": 200}, "group 0 would get lr 20, which looks like a typo; max is 10"),
])
def test_set_lr_rejections(kwargs, message):
    sched = LRSchedule(make_opt(), sched_cfg("cosine"), SPE, TOTAL)
    before = sched.lrs()
    with pytest.raises(ValueError, match=message):
        sched.set_lr(**kwargs)
    assert sched.lrs() == before   # a rejected change changes nothing


def test_rescale_from_zero_lr_says_what_to_do():
    opt = make_opt()
    sched = LRSchedule(opt, sched_cfg("cosine"), SPE, TOTAL)
    sched.set_lr(1e-30, mode="override")
    for g in opt.param_groups:   # an LR driven to 0 (e.g. by a schedule ending at eta_min 0)
        g["lr"] = 0.0
    sched._override = [0.0 for _ in opt.param_groups]
    with pytest.raises(ValueError, match=r"the LR is 0 right now.*mode='override'"):
        sched.set_lr(0.05)
    old, new = sched.set_lr(0.05, mode="override")
    assert old == [0.0, 0.0] and new == pytest.approx([0.05, 0.005])   # lr_mult ratio kept


def test_onecycle_needs_something_to_cycle():
    opt = torch.optim.Adagrad([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    with pytest.raises(UserError, match="adagrad has no momentum or beta1 to cycle; set schedule.cycle_momentum=false"):
        LRSchedule(opt, sched_cfg("onecycle"), SPE, TOTAL)
    LRSchedule(opt, sched_cfg("onecycle", cycle_momentum=False), SPE, TOTAL)


def test_onecycle_holds_its_last_lr_past_the_cycle():
    opt = make_opt()
    sched = LRSchedule(opt, sched_cfg("onecycle", total_steps=20), SPE, TOTAL)
    lrs = drive(sched, opt, 0, TOTAL)
    assert flat(lrs)[20:] == [flat(lrs)[20]] * 40


def test_current_lrs_follow_every_change():
    """The trainer records schedule.current each step: it must always equal the groups' LRs."""
    import torch

    from danlu.engine.config.schema import from_dict
    from danlu.engine.build.schedule import LRSchedule

    for name, extra in (("cosine", {}), ("plateau", {"patience": 0}), ("onecycle", {}), ("step", {"step_size": 1})):
        model = torch.nn.Linear(2, 2)
        opt = torch.optim.SGD([{"params": [model.weight]}, {"params": [model.bias], "lr": 0.5}], lr=0.1, momentum=0.9)
        cfg = from_dict({"schedule": {"name": name, "warmup_steps": 3, **extra}}).schedule
        sched = LRSchedule(opt, cfg, steps_per_epoch=4, total_steps=20)

        def groups():
            return [g["lr"] for g in opt.param_groups]
        assert sched.current == groups()
        for step in range(12):
            opt.step()  # no grads: a no-op, but torch wants it before each scheduler step
            sched.on_step()
            assert sched.current == groups(), (name, step)
            if step == 4:
                sched.set_lr(factor=0.5)
            if step == 6:
                sched.set_lr(value=0.01, group=1)
            if step % 4 == 3:
                sched.on_epoch_end()
                sched.on_eval(1.0)
            assert sched.current == groups(), (name, step)
        state = sched.state_dict()
        sched.set_lr(value=1.0)
        sched.load_state_dict(state)
        assert sched.current == groups()


# --- another length on a resume or a warm start: retime ---------------------------------------------

def _resumed(cfg, k, new_total, into_epoch=0):
    """A schedule saved after k steps of a TOTAL-step run, loaded for a run of new_total steps and retimed."""
    opt = make_opt()
    sched = LRSchedule(opt, cfg, SPE, TOTAL)
    head = drive(sched, opt, 0, k)
    saved = roundtrip({"opt": opt.state_dict(), "sched": sched.state_dict()})
    opt2 = make_opt()
    sched2 = LRSchedule(opt2, cfg, SPE, new_total)
    opt2.load_state_dict(saved["opt"])
    sched2.load_state_dict(saved["sched"])
    note = sched2.retime(new_total - k, into_epoch)
    return head, sched2, opt2, note


@pytest.mark.parametrize("name", ["cosine", "onecycle"])
@pytest.mark.parametrize("new_total", [120, 40, 31])
@pytest.mark.parametrize("warmup", [0, 7])
def test_retime_stretches_or_shrinks_what_is_left_and_never_climbs_back(name, new_total, warmup):
    cfg = sched_cfg(name, warmup)
    k = 30
    head, sched, opt, note = _resumed(cfg, k, new_total)
    assert note and "refitted to the run's new length" in note
    tail = drive(sched, opt, k, new_total)
    _, same, same_opt, _ = _resumed(cfg, k, TOTAL)  # the run as it was planned
    assert tail[0] == pytest.approx(drive(same, same_opt, k, k + 1)[0], rel=1e-9)  # the LR goes on from here
    lrs = [g[0] for g in head + tail]
    peak = lrs.index(max(lrs))
    assert all(b <= a * (1 + 1e-9) for a, b in zip(lrs[peak:], lrs[peak + 1:]))  # down only, to the end
    opt_f = make_opt()  # a run planned at the new length from the start ends where this one ends
    fresh = drive(LRSchedule(opt_f, cfg, SPE, new_total), opt_f, 0, new_total)
    if new_total - k >= 10:  # (one step left can only use the LR of now)
        assert lrs[-1] == pytest.approx(fresh[-1][0], abs=0.01 * BASE[0])
    assert tail[-1][1] / tail[-1][0] == pytest.approx(BASE[1] / BASE[0])  # groups keep their ratio
    # the refitted schedule saves and loads like any other: a second resume goes on exactly
    _, sched2, opt2, _ = _resumed(cfg, k, new_total)
    mid = (k + new_total) // 2
    first = drive(sched2, opt2, k, mid)
    saved = roundtrip({"opt": opt2.state_dict(), "sched": sched2.state_dict()})
    opt3 = make_opt()
    sched3 = LRSchedule(opt3, cfg, SPE, new_total)
    opt3.load_state_dict(saved["opt"])
    sched3.load_state_dict(saved["sched"])
    assert sched3.retime(new_total - mid) is None  # already fitted: nothing to do
    close(first + drive(sched3, opt3, mid, new_total), tail)


@pytest.mark.parametrize("name", ["cosine", "onecycle"])
def test_retime_inside_the_warmup_derives_the_length_again(name):
    cfg = sched_cfg(name, 12)
    head, sched, opt, _ = _resumed(cfg, 5, 90)
    opt_f = make_opt()
    fresh = drive(LRSchedule(opt_f, cfg, SPE, 90), opt_f, 0, 90)
    close(head + drive(sched, opt, 5, 90), fresh)


def test_retime_per_epoch_cosine_ends_at_the_last_epoch():
    cfg = sched_cfg("cosine", 0, interval="epoch")
    head, sched, opt, note = _resumed(cfg, 25, 100, into_epoch=5)
    assert "epochs" in note
    tail = drive(sched, opt, 25, 100)
    assert tail[0][0] == pytest.approx(head[-1][0])  # mid-epoch: the LR holds until the epoch ends
    assert [round(x[0], 9) for x in tail] == sorted((round(x[0], 9) for x in tail), reverse=True)
    assert tail[-1][0] < 0.05 * BASE[0]


def test_retime_keeps_an_explicit_length_and_leaves_other_schedules_alone():
    _, sched, opt, note = _resumed(sched_cfg("cosine", T_max=50), 30, 120)
    assert note == ("schedule.T_max=50 is set in the config, so the cosine keeps its length while the run now "
                    "ends at step 120 of this schedule's clock")
    for name in ("step", "multistep", "exponential", "cosine_restarts", "plateau", "none"):
        head, sched, opt, note = _resumed(sched_cfg(name), 30, 120)
        assert note is None
        assert drive(sched, opt, 30, 60) == trace(sched_cfg(name))[30:60]


@pytest.mark.parametrize("name", ["cosine", "onecycle"])
def test_retime_of_a_schedule_that_has_ended_says_so(name):
    from danlu.engine.build.schedule import ScheduleEnded
    with pytest.raises(ScheduleEnded, match="has already reached its end"):
        _resumed(sched_cfg(name), TOTAL, 90)


# --- the lambda schedule: the user's own function -------------------------------------


def test_lambda_composes_with_warmup_and_counts_from_its_end():
    cfg = sched_cfg("lambda", warmup=5, fn=LAMBDAS + ":linear_decay")
    got = flat(trace(cfg))
    assert got[:5] == pytest.approx([BASE[0] * s / 5 for s in range(1, 6)])
    assert got[5 + 12] == pytest.approx(BASE[0] * (1 - 12 / 40))   # fn(12), twelve steps after the warmup


@pytest.mark.parametrize("fn, words", [
    ("no_such_module_xyz:f", "schedule.fn"),
    (LAMBDAS + ":missing", "has no attribute 'missing'"),
    (LAMBDAS + ":NOT_CALLABLE", "not a callable"),
    (LAMBDAS + ":broken", "raised ZeroDivisionError"),
    (LAMBDAS + ":not_a_number", "must return a finite number >= 0"),
])
def test_a_bad_lambda_fn_is_a_clear_error_naming_the_key(fn, words):
    with pytest.raises(UserError) as e:
        LRSchedule(make_opt(), sched_cfg("lambda", fn=fn), SPE, TOTAL)
    assert words in str(e.value) and "schedule.fn" in str(e.value)


@pytest.mark.parametrize("raw, words", [({"name": "lambda"}, "needs fn"),
                                        ({"name": "lambda", "fn": "mymodule.f"}, "not an import target"),
                                        ({"name": "cosine", "fn": "m:f"}, "lambda do")])
def test_the_config_checks_schedule_fn(raw, words):
    from danlu.engine.config.schema import from_dict
    from danlu.engine.errors import ConfigError
    with pytest.raises(ConfigError) as e:
        from_dict({"schedule": raw})
    assert words in str(e.value)
