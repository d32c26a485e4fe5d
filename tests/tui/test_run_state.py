"""The fold from events to what is shown, and the plot details it feeds (no terminal)."""

from __future__ import annotations

from danlu.engine.control import events as ev
from danlu.tui.describe import describe
from danlu.tui.plot import PlotSpec, render_plot
from danlu.tui.run_state import RunState
from danlu.tui.series import Series
from danlu.tui.widgets.status_line import memory_summary

from .fake_engine import run_started


def test_every_applied_set_hparam_is_tracked():
    s = RunState()
    s.apply(run_started())
    cmds = {c.id: c for c in (ev.set_hparam("weight_decay", 0.05), ev.set_hparam("grad_clip", None))}
    for c in cmds.values():
        s.apply(ev.CommandApplied(c.id, "set_hparam", 7, old=1.0, new=c.args["value"]), cmds)
    assert s.hparams == {"weight_decay": 0.05, "grad_clip": None}
    assert s.grad_clip is None


def test_the_dialog_shows_what_a_real_trainer_applied(tiny_config):
    """Real answers (per param group lists, beta1 set through momentum, clipping off) folded as the
    dashboard folds them: the hparam dialog's "now" reads as a person would type the value."""
    from pathlib import Path
    from tests.engine.helpers import run_trainer
    linear = str(Path(__file__).parents[1] / "engine" / "faulty_model.py") + ":build"  # weight + bias: 2 groups
    sent = [ev.set_hparam("weight_decay", 0.1), ev.set_hparam("betas", [0.8, 0.99]),
            ev.set_hparam("weight_decay", 0.2, group=1), ev.set_hparam("momentum", 0.85),
            ev.set_hparam("grad_clip", None), ev.set_hparam("eval_every", 50)]
    t, ch = run_trainer(tiny_config({"model": {"name": linear}, "optim": {"name": "adamw", "weight_decay": 0.05},
                                     "train": {"max_steps": 4}}), script={2: list(sent)})
    commands = {c.id: c for c in sent}
    s = RunState()
    for e in ch.seen:
        s.apply(e, commands)
        if isinstance(e, ev.RunStarted):
            assert s.current_hparams() == {"weight_decay": "0.05", "betas": "0.9, 0.999", "grad_clip": "1",
                                           "log_every": "4"}
    assert not [e for e in ch.seen if isinstance(e, ev.CommandRejected)]
    assert s.groups == ["default", "default/no_decay"]
    assert s.current_hparams() == {
        "weight_decay": "default: 0.1; default/no_decay: 0.2",  # the no-decay group kept 0 until named
        "betas": "0.85, 0.99",                                  # adamw's momentum is beta1
        "momentum": "0.85",
        "grad_clip": "off",
        "eval_every": "50",
        "log_every": "4",
    }


def test_set_lr_answer_updates_the_shown_lrs_at_once():
    s = RunState()
    s.apply(run_started())
    s.lrs = [1e-3, 1e-2]
    c = ev.set_lr(factor=0.5)
    s.apply(ev.CommandApplied(c.id, "set_lr", 3, old=[1e-3, 1e-2], new=[5e-4, 5e-3]), {c.id: c})
    assert s.lrs == [5e-4, 5e-3]


def test_sparse_points_draw_a_connected_line():
    series = Series()
    series.extend([1, 2, 3], [0.0, 1.0, 0.0])
    rows = render_plot(PlotSpec(lines=[(series, "train")]), 40, 6, {})
    plot = ["".join(seg.text for seg in r)[9:] for r in rows[:-1]]
    for col in range(len(plot[0])):  # no empty column between the first and last point
        assert any(r[col] != " " for r in plot), col


def test_log_lines_are_short():
    c = ev.set_lr(factor=0.5)
    line = describe(ev.CommandApplied(c.id, "set_lr", 9, old=[2e-3, 2e-3], new=[1e-3, 1e-3],
                                      detail="rescale; from step 10"), {c.id: c})
    assert line == ("info", "step 9: lr 0.002 → 0.001")
    saved = describe(ev.CheckpointSaved(5, "/r/run-1/checkpoints/best.pt", "best"), run_dir="/r/run-1")
    assert saved == ("info", "step 5: saved checkpoints/best.pt (best)")
    done = describe(ev.StatusChanged("finished", 9, "finished at step 9"))
    assert done == ("info", "step 9: finished")


def test_every_answer_reads_as_a_sentence_not_raw_values():
    run = "/r/run-1"
    ev_ = ev.eval_now()
    line = describe(ev.CommandApplied(ev_.id, "eval_now", 12, None,
                                      {"val_loss": 1.7136263020833333, "val_acc": 0.29}), {ev_.id: ev_}, run)
    assert line == ("info", "step 12: evaluated: val_loss 1.71 acc 29.0%")
    save = ev.save_checkpoint()
    for path in ("checkpoints/step-0000028-request.pt", f"{run}/checkpoints/step-0000028-request.pt"):
        line = describe(ev.CommandApplied(save.id, "save_checkpoint", 28, None, path), {save.id: save}, run)
        assert line == ("info", "step 28: checkpoint saved: checkpoints/step-0000028-request.pt")
    clip = ev.set_hparam("grad_clip", None)
    line = describe(ev.CommandApplied(clip.id, "set_hparam", 3, 5.0, None), {clip.id: clip}, run)
    assert line == ("info", "step 3: grad_clip 5 → off")
    every = ev.set_hparam("eval_every", None)
    line = describe(ev.CommandApplied(every.id, "set_hparam", 3, 200, None), {every.id: every}, run)
    assert line == ("info", "step 3: eval_every 200 → per epoch")
    p = ev.pause()
    assert describe(ev.CommandApplied(p.id, "pause", 4, detail="paused after step 4"), {p.id: p}) \
        == ("info", "step 4: paused")
    evald = describe(ev.EvalDone(40, 1, 0.5123, None, 0.5, True))
    assert evald == ("info", "step 40: eval val_loss 0.512 (best)")  # no accuracy where there is none
    for text in (line, evald):
        assert "None" not in text[1] and "{" not in text[1]


def test_memory_summary_prefers_cuda():
    assert memory_summary({"cuda_allocated_mb": 1024.0, "cuda_total_mb": 8192.0, "rss_mb": 10.0}) \
        == "gpu 1.0 GiB/8.0 GiB"
    assert memory_summary({"rss_mb": 512.0}) == "rss 512.0 MiB"
    assert memory_summary({}) == ""


def _contents(series: Series):
    return (list(series.recent), series.buckets, series.width, series.count, series.skipped,
            series.first_step, series.last_step, series.last)


def _eager(batches) -> dict:
    """The plain definition: every batch into the series as it arrives (EMA through RunState's own)."""
    from danlu.tui.run_state import _ema
    out = {k: Series() for k in ("loss", "ema", "grad", "grad_ema", "lr")}
    ema = gema = 0.0
    n = gn = nonfinite = 0
    for m in batches:
        out["loss"].extend(m.steps, m.loss)
        steps, smooth, ema, n = _ema(m.steps, m.loss, ema, n)
        nonfinite += len(m.steps) - len(steps)
        out["ema"].extend(steps, smooth)
        out["grad"].extend(m.steps, m.grad_norm)
        steps, smooth, gema, gn = _ema(m.steps, m.grad_norm, gema, gn)
        out["grad_ema"].extend(steps, smooth)
        out["lr"].extend(m.steps, m.lr)
    return {k: _contents(v) for k, v in out.items()} | {"nonfinite": nonfinite}


def test_series_read_at_any_moment_show_every_step_folded_so_far():
    """The fold waits for a reader; whenever a chart reads, it sees exactly what folding each batch at once shows."""
    import dataclasses
    import random

    from .fake_engine import metrics
    rnd = random.Random(3)
    batches = [metrics(i * 10, 10, rnd) for i in range(300)]
    batches[57] = dataclasses.replace(batches[57], loss=[float("nan")] + batches[57].loss[1:])
    s = RunState()
    for i, m in enumerate(batches):
        s.apply(m)
        if rnd.random() < 0.05 or i == len(batches) - 1:  # a chart frame now and then
            shown = {k: _contents(getattr(s, k)) for k in ("loss", "ema", "grad", "grad_ema", "lr")}
            assert shown | {"nonfinite": s.nonfinite} == _eager(batches[:i + 1]), i
    assert s.nonfinite == 1 and s.loss.last_step == 3000


def test_pending_steps_stay_bounded_when_no_chart_reads():
    """With a dialog over the charts nothing reads the series; the pending batches still fold."""
    import random

    from danlu.tui.run_state import FOLD_AT

    from .fake_engine import metrics
    rnd = random.Random(0)
    s = RunState()
    for i in range(3 * FOLD_AT // 10):
        s.apply(metrics(i * 10, 10, rnd))
        assert s._pending_steps < FOLD_AT
    assert s._loss.count > 2 * FOLD_AT - 10  # folded without a single read


def _metrics(step: int, layer_norms: dict | None = None) -> ev.Metrics:
    return ev.Metrics(steps=[step], loss=[1.0], grad_norm=[1.0], lr=[1e-3], epoch=1, lrs=[1e-3], clipped=0,
                      phase="constant", steps_per_s=1.0, samples_per_s=1.0, elapsed=1.0, eta=1.0,
                      total_steps=100, layer_norms=layer_norms or {},
                      layer_norms_step=step if layer_norms else None)


def test_the_latest_layer_norms_are_kept_and_ranked():
    from danlu.engine.control.channel import join_metrics
    s = RunState()
    s.apply(_metrics(5, {"a": 0.1, "b": 3.0, "c": float("nan"), "d": 0.5}))
    s.apply(_metrics(6))  # a step that was not sampled keeps the last ones shown
    assert s.layer_norms_step == 5
    assert [n for n, _ in s.top_layers(3)] == ["c", "b", "d"]  # a non-finite norm first: it is the news
    # batches merged while nobody drained keep the newest sampled norms
    joined = join_metrics([_metrics(7, {"x": 1.0}), _metrics(8), _metrics(9)])
    assert joined.layer_norms == {"x": 1.0} and joined.layer_norms_step == 7


def test_an_evaluation_without_accuracy_says_no_none():
    from io import StringIO
    from danlu.tui.cli.headless import ProgressLine, _drain
    from danlu.engine.control.channel import Channel
    e = ev.EvalDone(step=10, epoch=1, val_loss=0.25, val_acc=None, best_val_loss=0.25, is_best=True)
    assert "None" not in describe(e)[1] and "acc" not in describe(e)[1]
    out = StringIO()
    line, ch = ProgressLine(out), Channel()
    ch.emit(_metrics(10))
    ch.emit(e)
    _drain(ch, line)
    text = out.getvalue() + line.line()
    assert "val_loss 0.2500" in text and "None" not in text and "acc" not in text
