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
        return "info", f"step {e.step}: {applied_text(e, commands.get(e.command_id))}"
    if isinstance(e, ev.CommandRejected):
        return "warning", f"step {e.step}: {e.kind} rejected — {e.reason}"
    if isinstance(e, ev.CheckpointSaved):
        return "info", f"step {e.step}: saved {short_path(e.path, run_dir)} ({e.reason})"
    if isinstance(e, ev.EvalDone):
        best = " (best)" if e.is_best else ""
        acc = f" acc {num(e.val_acc)}" if e.val_acc is not None else ""  # regression losses have none
        return "info", f"step {e.step}: eval val_loss {num(e.val_loss)}{acc}{best}"
    if isinstance(e, ev.Alert):
        text = f"step {e.step}: {e.kind}: {e.message}"
        return ("warning" if e.kind in (ev.AlertKind.SPIKE, ev.AlertKind.NONFINITE) else "error"), text
    if isinstance(e, ev.LogLine):
        return e.level, f"step {e.step}: {e.message}"
    return None


def applied_text(e: ev.CommandApplied, cmd: ev.Command | None = None) -> str:
    """'set_lr 1e-3 → 5e-4' style summary of an applied command."""
    name = e.kind
    detail = e.detail
    if e.kind == ev.CommandKind.SET_HPARAM and cmd is not None:
        name = str(cmd.args.get("name", name))
    elif e.kind == ev.CommandKind.SET_LR:
        # the engine's detail ("rescale; from step N") repeats the step the caller shows
        name, detail = "lr", ""
        if cmd is not None and cmd.args.get("group") is not None:
            name = f"lr (group {cmd.args['group']})"
        if cmd is not None and cmd.args.get("mode") == ev.LrMode.OVERRIDE:
            detail = "override"
    if e.old is None and e.new is None:
        text = f"{name} applied"
    else:
        text = f"{name} {_val(e.old)} → {_val(e.new)}"
    return text + (f" ({detail})" if detail else "")
