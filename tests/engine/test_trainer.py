"""The loop: learns, runs every optimizer and scheduler, answers every command, resumes exactly."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import pytest
import torch

from danlu.engine.control import events as ev
from danlu.engine.control.channel import Channel
from danlu.engine.config.files import load_config
from danlu.engine.config.knobs import OPTIMIZERS, SCHEDULERS
from danlu.engine.store.runlog import read_jsonl
from danlu.engine.config.files import config_for_resume
from danlu.engine.loop.trainer import Trainer

from ..conftest import wait_until
from .helpers import of_type, run_trainer


def _train_records(run_dir):
    return [r for r in read_jsonl(run_dir / "metrics.jsonl") if "loss" in r]


def test_default_config_loss_falls(tmp_path):
    cfg = load_config(None, [f"run.out_dir={tmp_path}", "train.max_steps=120", "data.num_workers=0",
                             "run.device=cpu", "train.eval_every=120"])
    t, ch = run_trainer(cfg)
    assert t.final_state == "finished"
    losses = [r["loss"] for r in _train_records(t.run_dir)]
    assert len(losses) == 120
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.6 * first, (first, last)
    evals = of_type(ch.seen, ev.EvalDone)
    assert evals and evals[-1].val_acc > 0.4  # chance is 1/6


def test_run_directory_is_complete(tiny_config):
    t, _ = run_trainer(tiny_config({"train": {"max_steps": 10}}))
    d = t.run_dir
    for name in ("config.yaml", "metrics.jsonl", "events.jsonl", "state.json", "checkpoints/last.pt"):
        assert (d / name).exists(), name
    rec = _train_records(d)[0]
    assert {"step", "epoch", "loss", "lr", "lrs", "grad_norm"} <= set(rec)
    assert json.loads((d / "state.json").read_text())["state"] == "finished"
    assert any(e["kind"] == "checkpoint" for e in read_jsonl(d / "events.jsonl"))


def test_max_steps_wins_over_epochs(tiny_config):
    # 12 steps per epoch: max_steps=30 takes 2.5 epochs although epochs says 1, and the
    # progress total and the cosine schedule follow max_steps, not the epoch count
    t, ch = run_trainer(tiny_config({"schedule": {"name": "cosine"}, "train": {"epochs": 1, "max_steps": 30}}))
    assert t.final_state == "finished" and t.step == 30
    started = of_type(ch.seen, ev.RunStarted)[0]
    assert started.total_steps == 30 and started.epochs == 3
    recs = _train_records(t.run_dir)
    assert [r["step"] for r in recs] == list(range(1, 31))
    assert {r["epoch"] for r in recs} == {1, 2, 3}  # counted from 1, as people count
    lrs = [r["lr"] for r in recs]
    assert all(b <= a for a, b in zip(lrs, lrs[1:]))  # one cosine over the 30 steps, no restart
    assert lrs[-1] < 0.01 * lrs[0]


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_optimizer_runs(tiny_config, name):
    t, _ = run_trainer(tiny_config({"optim": {"name": name, "lr": OPTIMIZERS[name][1] / 10},
                                    "train": {"max_steps": 5}}))
    assert t.final_state == "finished" and t.step == 5


@pytest.mark.parametrize("name", list(SCHEDULERS))
@pytest.mark.parametrize("warmup", [0, 3])
def test_every_scheduler_runs(tiny_config, name, warmup):
    fn = {"fn": str(Path(__file__).parent / "lambda_fns.py") + ":decay_10pct"} if name == "lambda" else {}
    t, _ = run_trainer(tiny_config({"schedule": {"name": name, "warmup_steps": warmup, **fn},
                                    "train": {"max_steps": 12, "eval_every": 4}}))
    assert t.final_state == "finished" and t.step == 12
    lrs = [r["lr"] for r in _train_records(t.run_dir)]
    assert all(math.isfinite(x) and x > 0 for x in lrs)
    if warmup:
        assert lrs[0] < lrs[2]


def test_grad_norm_reported_without_clipping(tiny_config):
    t, ch = run_trainer(tiny_config({"train": {"max_steps": 8, "grad_clip": None}}))
    norms = [r["grad_norm"] for r in _train_records(t.run_dir)]
    assert len(norms) == 8 and all(n > 0 for n in norms)


def test_grad_accum_scales_steps(tiny_config):
    t, _ = run_trainer(tiny_config({"train": {"grad_accum": 3, "epochs": 1}}))
    # 192 training samples / 16 = 12 micro-batches = 4 optimizer steps
    assert t.plan.steps_per_epoch == 4 and t.step == 4


def test_grad_accum_divides_the_loss_like_one_big_batch(tiny_config):
    """Two micro-batches of 8 are one batch of 16: the same logged loss and the same update."""
    def run(batch_size, accum):
        linear = str(Path(__file__).with_name("faulty_model.py")) + ":build"  # no dropout, no batch norm
        over = {"data": {"batch_size": batch_size}, "model": {"name": linear},
                "optim": {"name": "sgd", "lr": 0.1, "momentum": 0.0, "weight_decay": 0.0},
                "train": {"max_steps": 3, "grad_accum": accum, "grad_clip": None}, "monitor": {"log_every": 1}}
        t, _ = run_trainer(tiny_config(over))
        return t, _train_records(t.run_dir)

    one, one_rec = run(16, 1)
    two, two_rec = run(8, 2)
    assert [r["loss"] for r in two_rec] == pytest.approx([r["loss"] for r in one_rec], rel=1e-5)
    assert [r["grad_norm"] for r in two_rec] == pytest.approx([r["grad_norm"] for r in one_rec], rel=1e-5)
    for a, b in zip(one.model.parameters(), two.model.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


# End to end, through the trainer, for three schedulers; every scheduler, interval and mode is
# covered at the schedule level (test_schedule.py: rescale, override, resume).
@pytest.mark.parametrize("sched, mode", [("cosine", "rescale"), ("onecycle", "override"), ("plateau", "rescale")])
def test_set_lr_takes_effect_next_step_and_survives_resume(tiny_config, sched, mode):
    over = {"schedule": {"name": sched}, "train": {"max_steps": 16, "eval_every": 2, "checkpoint_every": 8}}
    base, _ = run_trainer(tiny_config(over))
    base_lr = [r["lr"] for r in _train_records(base.run_dir)]

    t, ch = run_trainer(tiny_config(over), script={5: [ev.set_lr(factor=0.5, mode=mode)]})
    applied = of_type(ch.seen, ev.CommandApplied)
    assert applied and applied[0].step == 5
    lr = [r["lr"] for r in _train_records(t.run_dir)]
    assert lr[:5] == pytest.approx(base_lr[:5])
    assert lr[5] == pytest.approx(base_lr[5] * 0.5, rel=1e-6)
    if mode == "override":
        assert all(x == pytest.approx(base_lr[5] * 0.5) for x in lr[5:])
    elif sched != "plateau":  # plateau's later cuts depend on the (now different) val loss
        assert lr[5:] == pytest.approx([x * 0.5 for x in base_lr[5:]], rel=1e-6)

    # the change survives a save and a resume: cut at step 8, resume, compare the rest
    cut, _ = run_trainer(tiny_config(over), script={5: [ev.set_lr(factor=0.5, mode=mode)],
                                                    8: [ev.stop(save=True)]})
    assert cut.final_state == "stopped" and cut.step == 8
    resumed, _ = run_trainer(config_for_resume(cut.run_dir), resume=cut.run_dir)
    lr_resumed = {r["step"]: r["lr"] for r in _train_records(resumed.run_dir)}
    for s in range(9, 17):
        assert lr_resumed[s] == pytest.approx(lr[s - 1], rel=1e-9), s


def test_every_command_is_answered(tiny_config):
    cmds = [ev.pause(), ev.set_lr(0.01), ev.set_lr(-1.0), ev.set_lr(factor=float("nan")),
            ev.set_hparam("weight_decay", 0.05), ev.set_hparam("grad_clip", 0.5), ev.set_hparam("batch_size", 3),
            ev.set_hparam("eval_every", 0), ev.save_checkpoint(), ev.eval_now(), ev.resume(), ev.resume(),
            ev.Command("explode")]
    t, ch = run_trainer(tiny_config({"train": {"max_steps": 6}}), script={2: cmds})
    answers = {e.command_id: e for e in ch.seen if isinstance(e, (ev.CommandApplied, ev.CommandRejected))}
    assert set(answers) == {c.id for c in cmds}
    rejected = {answers[c.id].kind for c in cmds if isinstance(answers[c.id], ev.CommandRejected)}
    assert rejected == {"set_lr", "set_hparam", "resume", "explode"}
    reasons = " ".join(e.reason for e in of_type(ch.seen, ev.CommandRejected))
    assert "batch_size" in reasons and "restart" in reasons
    assert t.hot["grad_clip"] == 0.5
    logged = read_jsonl(t.run_dir / "events.jsonl")
    kinds = [e["kind"] for e in logged]
    assert "set_lr" in kinds and "rejected" in kinds and "pause" in kinds


def test_pause_stops_steps_and_resume_continues(tiny_config):
    cfg = tiny_config({"train": {"epochs": 50}})
    ch = Channel()
    t = Trainer(cfg, ch)
    th = threading.Thread(target=t.run)
    th.start()
    try:
        wait_until(lambda: t.step >= 3)
        cmd = ch.send(ev.pause())
        wait_until(lambda: t.status == "paused")
        held = t.step
        # while paused the engine still answers commands
        q = ch.send(ev.set_lr(0.001))
        seen: list = []
        wait_until(lambda: seen.extend(ch.drain()) or any(getattr(e, "command_id", None) == q.id for e in seen))
        assert t.step == held
        assert any(isinstance(e, ev.CommandApplied) and e.command_id == cmd.id for e in seen)
        ch.send(ev.resume())
        wait_until(lambda: t.step > held + 2)
    finally:
        ch.send(ev.stop(save=False))
        th.join(timeout=30)
    assert not th.is_alive()
    assert t.final_state == "stopped"


def _final_params(run_dir):
    obj = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    return obj["model"]


def test_resume_reproduces_uninterrupted_run(tiny_config):
    over = {"data": {"num_workers": 2}, "model": {"args": {"dropout": 0.2}},
            "schedule": {"name": "cosine", "warmup_steps": 4}, "train": {"epochs": 2, "eval_every": 5}}
    full, _ = run_trainer(tiny_config(over))
    spe = full.plan.steps_per_epoch
    cut_at = spe + spe // 2  # in the middle of the second epoch
    cut, _ = run_trainer(tiny_config(over), script={cut_at: [ev.stop(save=True)]})
    assert cut.step == cut_at and cut.progress.batch_in_epoch not in (0, spe)
    resumed, _ = run_trainer(config_for_resume(cut.run_dir), resume=cut.run_dir)
    assert resumed.final_state == "finished"
    a = {r["step"]: r["loss"] for r in _train_records(full.run_dir)}
    b = {r["step"]: r["loss"] for r in _train_records(resumed.run_dir)}
    assert sorted(a) == sorted(b)
    assert [a[s] for s in sorted(a)] == [b[s] for s in sorted(b)]  # bit-exact
    pa, pb = _final_params(full.run_dir), _final_params(resumed.run_dir)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)


def _host_reads(monkeypatch) -> dict[str, int]:
    """Counts every way a tensor's values reach Python (each one a host sync on a GPU)."""
    counts = {"n": 0}
    for name in ("tolist", "item", "__float__", "__bool__", "__int__"):
        orig = getattr(torch.Tensor, name)

        def wrapped(self, *a, _orig=orig, **k):
            counts["n"] += 1
            return _orig(self, *a, **k)
        monkeypatch.setattr(torch.Tensor, name, wrapped)
    return counts


def test_layer_norms_are_sampled_and_ride_the_flush(tiny_config, monkeypatch):
    from danlu.engine.loop import step_metrics
    monkeypatch.setattr(step_metrics, "FLUSH_SECONDS", 1e9)  # flushes by log_every only: the same in both runs
    base = {"train": {"max_steps": 8, "grad_clip": None, "eval_every": 8}}
    counts = _host_reads(monkeypatch)
    run_trainer(tiny_config({**base, "monitor": {"log_every": 4, "layer_norms_every": 0}}))
    without, counts["n"] = counts["n"], 0
    t, ch = run_trainer(tiny_config({**base, "monitor": {"log_every": 4, "layer_norms_every": 3}}))
    assert counts["n"] == without  # no read of its own: the values come with the flush's one transfer
    records = read_jsonl(t.run_dir / "metrics.jsonl")
    layers = {r["step"]: r["layer_norms"] for r in records if "layer_norms" in r}
    steps = {r["step"]: r for r in records if "loss" in r}
    assert sorted(layers) == [3, 6]
    names = {n.rsplit(".", 1)[0] for n, p in t.model.named_parameters()}
    for step, norms in layers.items():
        assert set(norms) == names
        # the layers' norms make up the total norm reported for that step
        assert math.sqrt(sum(v * v for v in norms.values())) == pytest.approx(steps[step]["grad_norm"], rel=1e-4)
    sampled = [m for m in of_type(ch.seen, ev.Metrics) if m.layer_norms]
    assert sampled and sampled[-1].layer_norms_step == 6 and sampled[-1].layer_norms == layers[6]


def test_a_warmup_as_long_as_the_run_is_a_warning_in_the_run(tiny_config):
    t, ch = run_trainer(tiny_config({"schedule": {"name": "cosine", "warmup_steps": 20},
                                     "train": {"max_steps": 4}}))
    assert t.final_state == "finished"
    warnings = [e.message for e in of_type(ch.seen, ev.LogLine) if e.level == "warning"]
    assert any("schedule.warmup_steps=20 is as long as the run (4 steps) or longer" in w for w in warnings), warnings


def test_plateau_with_a_user_dataset_that_has_no_validation_set_is_refused(tiny_config, tmp_path):
    from danlu.engine.errors import ConfigError
    (tmp_path / "mydata.py").write_text(
        "import torch\nfrom torch.utils.data import TensorDataset\n"
        "def build(**unused):\n    ds = TensorDataset(torch.randn(64, 3, 16, 16), torch.randint(0, 2, (64,)))\n"
        "    ds.classes = ['a', 'b']\n    return ds\n")
    cfg = tiny_config({"data": {"name": f"{tmp_path}/mydata.py:build", "val_fraction": 0.0, "args": {}},
                       "schedule": {"name": "plateau"}, "train": {"max_steps": 2}})
    with pytest.raises(ConfigError, match="plateau lowers the LR when val_loss stops improving"):
        run_trainer(cfg)
    assert not (tmp_path / "runs").exists()  # refused before the run directory was made


# --- resume with overrides: each applied with a note, or refused before anything runs ----------------

def _events(run_dir):
    return read_jsonl(run_dir / "events.jsonl")


def _cut(tiny_config, over, at):
    t, _ = run_trainer(tiny_config(over), script={at: [ev.stop(save=True)]})
    assert t.final_state == "stopped" and t.step == at
    return t


def test_resume_with_a_longer_run_stretches_the_schedule_and_records_it(tiny_config):
    over = {"schedule": {"name": "cosine", "warmup_steps": 2}, "train": {"epochs": 10, "max_steps": 10}}
    cut = _cut(tiny_config, over, 6)
    resumed, ch = run_trainer(config_for_resume(cut.run_dir, ["train.max_steps=20"]), resume=cut.run_dir)
    assert resumed.final_state == "finished" and resumed.step == 20
    assert of_type(ch.seen, ev.RunStarted)[0].total_steps == 20
    lrs = [r["lr"] for r in _train_records(cut.run_dir)]  # the one run's metrics: steps 1-6, then 7-20
    assert len(lrs) == 20
    peak = lrs.index(max(lrs))
    assert all(b <= a * (1 + 1e-9) for a, b in zip(lrs[peak:], lrs[peak + 1:]))  # never climbs back
    assert lrs[-1] < 0.01 * max(lrs)
    # step 7 uses the LR the 10-step run would have used (its cosine half done: 4 of 8 steps after the
    # warmup), and from there the cosine runs over 14 steps instead of 4
    assert lrs[6] == pytest.approx(0.003 * (1 + math.cos(math.pi * 4 / 8)) / 2)
    assert lrs[7] > 0.003 * (1 + math.cos(math.pi * 5 / 8)) / 2
    assert "max_steps: 20" in (cut.run_dir / "config.yaml").read_text()  # a later resume reads 20
    kinds = {e["kind"]: e for e in _events(cut.run_dir)}
    assert kinds["resume_change"]["key"] == "train.max_steps" and kinds["resume_change"]["new"] == 20
    assert kinds["schedule_retimed"]["old_total"] == 10 and kinds["schedule_retimed"]["new_total"] == 20
    notes = [e.message for e in of_type(ch.seen, ev.LogLine)]
    assert any("train.max_steps 10 → 20: the run now ends at step 20" in n for n in notes), notes
    assert any("cosine schedule refitted to the run's new length" in n for n in notes), notes
    again = config_for_resume(cut.run_dir)
    assert again.train.max_steps == 20


def test_resume_with_more_epochs_stretches_the_schedule(tiny_config):
    over = {"data": {"args": {"size": 128}}, "schedule": {"name": "onecycle"}, "train": {"epochs": 2}}
    cut = _cut(tiny_config, over, 9)  # 6 steps per epoch: mid second epoch
    resumed, _ = run_trainer(config_for_resume(cut.run_dir, ["train.epochs=4"]), resume=cut.run_dir)
    assert resumed.step == 24
    lrs = [r["lr"] for r in _train_records(cut.run_dir)]
    peak = lrs.index(max(lrs))
    assert all(b <= a * (1 + 1e-9) for a, b in zip(lrs[peak:], lrs[peak + 1:])) and lrs[-1] < 0.01 * max(lrs)


def test_resume_refuses_a_length_it_cannot_fit_and_leaves_the_run_untouched(tiny_config):
    from danlu.engine.errors import UserError
    done, _ = run_trainer(tiny_config({"schedule": {"name": "cosine"}, "train": {"max_steps": 10}}))
    before = {p.name: p.read_bytes() for p in done.run_dir.iterdir() if p.is_file()}
    with pytest.raises(UserError, match="the cosine schedule has already reached its end") as e:
        run_trainer(config_for_resume(done.run_dir, ["train.max_steps=20"]), resume=done.run_dir)
    assert f"danlu run --warm-start {done.run_dir} train.max_steps=20" in str(e.value)
    with pytest.raises(UserError, match="train.max_steps=5 is behind the run, which is at step 10"):
        run_trainer(config_for_resume(done.run_dir, ["train.max_steps=5"]), resume=done.run_dir)
    assert {p.name: p.read_bytes() for p in done.run_dir.iterdir() if p.is_file()} == before


def test_resume_applies_hot_overrides_as_the_live_commands_do(tiny_config):
    over = {"schedule": {"name": "cosine"}, "train": {"max_steps": 10, "grad_clip": 1.0}}
    base, _ = run_trainer(tiny_config(over))
    base_lr = [r["lr"] for r in _train_records(base.run_dir)]
    cut = _cut(tiny_config, over, 5)
    resumed, ch = run_trainer(config_for_resume(cut.run_dir, ["optim.lr=0.0003", "train.grad_clip=off",
                                                             "optim.weight_decay=0.05"]), resume=cut.run_dir)
    lr = {r["step"]: r["lr"] for r in _train_records(cut.run_dir)}
    for s in range(6, 11):  # the same cosine, at a tenth of the level (0.003 -> 0.0003)
        assert lr[s] == pytest.approx(base_lr[s - 1] * 0.1, rel=1e-6), s
    assert resumed.hot["grad_clip"] is None  # wins over the value the checkpoint carried
    assert all(g["weight_decay"] == 0.05 for g in resumed.optimizer.param_groups if g["weight_decay"])
    notes = [e.message for e in of_type(ch.seen, ev.LogLine)]
    assert any(n.startswith("optim.lr 0.003 → 0.0003 applied at step 5") for n in notes), notes
    assert any(n.startswith("train.grad_clip 1.0 → off applied at step 5") for n in notes), notes
    keys = [e["key"] for e in _events(cut.run_dir) if e["kind"] == "resume_change"]
    assert set(keys) == {"optim.lr", "train.grad_clip", "optim.weight_decay"}


def test_resume_refuses_a_config_that_would_make_another_run(tiny_config):
    from danlu.engine.errors import UserError
    cut = _cut(tiny_config, {"train": {"max_steps": 8}}, 4)
    before = {p.name: p.read_bytes() for p in cut.run_dir.iterdir() if p.is_file()}
    cfg = config_for_resume(cut.run_dir)
    cfg.optim.name, cfg.optim.args = "sgd", {"momentum": 0.9}  # e.g. a config.yaml edited by hand
    cfg.data.batch_size = 8
    with pytest.raises(UserError) as e:
        run_trainer(cfg, resume=cut.run_dir)
    msg = str(e.value)
    assert "optim.name adamw → sgd: the optimizer's state belongs to its kind" in msg
    assert "data.batch_size 16 → 8: it changes what one step sees" in msg
    assert f"danlu run --warm-start {cut.run_dir}" in msg
    assert {p.name: p.read_bytes() for p in cut.run_dir.iterdir() if p.is_file()} == before


def test_resume_may_split_a_step_into_smaller_pieces(tiny_config):
    def cfg():  # no BatchNorm or dropout, whose numbers depend on the size of the pieces
        c = tiny_config({"data": {"args": {"size": 128}}, "train": {"epochs": 2}})
        c.model.name, c.model.args = "mlp", {"hidden": [16], "dropout": 0.0}
        return c
    full, _ = run_trainer(cfg())
    cut, _ = run_trainer(cfg(), script={4: [ev.stop(save=True)]})
    resumed, ch = run_trainer(config_for_resume(cut.run_dir, ["data.batch_size=8", "train.grad_accum=2"]),
                              resume=cut.run_dir)
    assert resumed.final_state == "finished" and resumed.step == full.step == 12
    a = {r["step"]: r["loss"] for r in _train_records(full.run_dir)}
    b = {r["step"]: r["loss"] for r in _train_records(cut.run_dir)}
    assert sorted(b) == list(range(1, 13))
    for s in range(5, 13):  # the same samples per step: the same losses, up to float sums
        assert b[s] == pytest.approx(a[s], rel=1e-3, abs=1e-4), s
