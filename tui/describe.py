"""One line of text for the event log (and toasts) per engine event. Pure."""

from __future__ import annotations

from typing import Any

from danlu.engine.control import events as ev

from .format import num


def _val(x: Any) -> str:
    if isinstance(x, (list, tuple)):
        if len(x) > 1 and all(v == x[0] for v in x):
            return _val(x[0])  # every group the same: one number says it
        return "[" + ", ".join(_val(v) for v in x) + "]"
    if isinstance(x, float):
        return num(x)
    return str(x)


# States the engine passes through around evals and saves; the status line shows them.
TRANSIENT_STATES = (ev.State.RUNNING, ev.State.EVALUATING, ev.State.SAVING, ev.State.STARTING)


def short_path(path: str, run_dir: str | None) -> str:
    """A path inside the run directory relative to it (the status line shows the run dir)."""
    if run_dir and path.startswith(run_dir.rstrip("/") + "/"):
        return path[len(run_dir.rstrip("/")) + 1:]
    return path


def state_detail(state: str, detail: str) -> str:
    """The detail without repeating the state: 'finished at step 9' -> 'at step 9'."""
    if detail.lower().startswith(state):
        return detail[len(state):].strip(" :—-")
    return detail


def describe(e: Any, commands: dict[int, ev.Command] | None = None,
             run_dir: str | None = None) -> tuple[str, str] | None:
    """(level, text) for events a person wants in the log; None for metrics."""
    commands = commands or {}
    if isinstance(e, ev.RunStarted):
        # the run dir is on the status line; say what the run is
        return "info", (f"run started: {e.total_steps} steps ({e.epochs} epochs of "
                        f"{e.steps_per_epoch}), batch {e.batch_size}, {e.num_params:,} params, "
                        f"{e.device} {e.precision}")
    if isinstance(e, ev.StatusChanged):
        if e.state in TRANSIENT_STATES and not e.detail:
            return None  # evaluating/saving blips: their results have log lines of their own
        detail = state_detail(e.state, e.detail)
        if detail.startswith("at step"):
            detail = ""  # the line starts with the step already
        text = f"step {e.step}: {e.state}" + (f" — {detail}" if detail else "")
        return ("error" if e.state == ev.State.FAILED else "info"), text
    if isinstance(e, ev.CommandApplied):
        return "info", f"step {e.step}: {applied_text(e, commands.get(e.command_id), run_dir)}"
    if isinstance(e, ev.CommandRejected):
        return "warning", f"step {e.step}: {e.kind} rejected — {e.reason}"
    if isinstance(e, ev.CheckpointSaved):
        return "info", f"step {e.step}: saved {short_path(e.path, run_dir)} ({e.reason})"
    if isinstance(e, ev.EvalDone):
        best = " (best)" if e.is_best else ""
        return "info", f"step {e.step}: eval {_metrics_text(e.val_loss, e.val_acc)}{best}"
    if isinstance(e, ev.Alert):
        text = f"step {e.step}: {e.kind}: {e.message}"
        return ("warning" if e.kind in (ev.AlertKind.SPIKE, ev.AlertKind.NONFINITE) else "error"), text
    if isinstance(e, ev.LogLine):
        return e.level, f"step {e.step}: {e.message}"
    if isinstance(e, ev.ParamsChanged) and e.source != "command":  # a command's answer has its own line
        return "info", f"step {e.step}: {e.source}: {e.detail}"
    if isinstance(e, ev.ProfileDone):
        return "info", f"step {e.step}: {profile_text(e, run_dir)}"
    return None


def profile_text(e: ev.ProfileDone, run_dir: str | None = None) -> str:
    """'profiled steps 3-5: top aten::mm 31%, data loading 12% of step time; trace profile/steps-3-5.json'."""
    top = e.top_ops[0] if e.top_ops else None
    parts = [f"top {top['name']} {top['pct']:.0f}%" if top else "no ops recorded",
             f"data loading {100 * e.data_share:.0f}% of step time"]
    cut = f" ({e.detail})" if e.detail else ""
    return (f"profiled steps {e.first_step}-{e.step}{cut}: {', '.join(parts)}; "
            f"trace {short_path(e.trace, run_dir)}")


# What an empty value of a hot setting means, in words (the engine sends None).
_EMPTY = {"grad_clip": "off", "eval_every": "per epoch", "checkpoint_every": "per epoch"}


def _setting(name: str, x: Any) -> str:
    if x is None:
        return _EMPTY.get(name, "–")
    return _val(x)


def applied_text(e: ev.CommandApplied, cmd: ev.Command | None = None, run_dir: str | None = None) -> str:
    """One short line saying what an applied command did: 'lr 1e-3 → 5e-4', 'grad_clip 5 → off'."""
    kind, detail = e.kind, ""
    if kind == ev.CommandKind.PAUSE:
        return "paused"
    if kind == ev.CommandKind.RESUME:
        return "resumed"
    if kind == ev.CommandKind.STOP:
        return "stopping" + ("" if e.detail == "saving and stopping" else f" ({e.detail})" if e.detail else "")
    if kind == ev.CommandKind.PROFILE:
        return e.detail or "profiling"
    if kind == ev.CommandKind.SAVE_CHECKPOINT:
        return f"checkpoint saved: {short_path(str(e.new), run_dir)}" if e.new else "checkpoint saved"
    if kind == ev.CommandKind.EVAL_NOW:
        res = e.new if isinstance(e.new, dict) else {}
        return "evaluated: " + _metrics_text(res.get("val_loss"), res.get("val_acc"))
    if kind == ev.CommandKind.LR_FIND:
        return f"LR range test: {e.detail}"
    if kind == ev.CommandKind.SET_LR:
        # the engine's detail ("rescale; from step N") repeats the step the caller shows
        name = "lr"
        if cmd is not None and cmd.args.get("group") is not None:
            name = f"lr (group {cmd.args['group']})"
        if cmd is not None and cmd.args.get("mode") == ev.LrMode.OVERRIDE:
            detail = "override"
        return f"{name} {_val(e.old)} → {_val(e.new)}" + (f" ({detail})" if detail else "")
    if kind in (ev.CommandKind.FREEZE, ev.CommandKind.UNFREEZE):
        old, new = (f"{x:,}" if isinstance(x, int) else _val(x) for x in (e.old, e.new))
        return f"{e.detail}; trainable {old} → {new}"
    name = str(cmd.args.get("name", kind)) if cmd is not None and kind == ev.CommandKind.SET_HPARAM else kind
    text = f"{name} {_setting(name, e.old)} → {_setting(name, e.new)}"
    return text + (f" ({e.detail})" if e.detail else "")


def _metrics_text(val_loss: Any, val_acc: Any) -> str:
    text = f"val_loss {num(val_loss)}"
    if isinstance(val_acc, (int, float)):
        text += f" acc {100 * val_acc:.1f}%"
    return text
