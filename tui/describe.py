"""One line of text for the event log (and toasts) per engine event. Pure."""

from __future__ import annotations

from typing import Any

from danlu.engine import events as ev

from .format import num


def _val(x: Any) -> str:
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(_val(v) for v in x) + "]"
    if isinstance(x, float):
        return num(x)
    return str(x)


# States the engine passes through around evals and saves; the status line shows them.
TRANSIENT_STATES = ("running", "evaluating", "saving", "starting")


def describe(e: Any, commands: dict[int, ev.Command] | None = None) -> tuple[str, str] | None:
    """(level, text) for events a person wants in the log; None for metrics."""
    commands = commands or {}
    if isinstance(e, ev.RunStarted):
        return "info", (f"run started: {e.run_dir} on {e.device} ({e.precision}), "
                        f"{e.total_steps} steps, {e.num_params:,} params")
    if isinstance(e, ev.StatusChanged):
        if e.state in TRANSIENT_STATES and not e.detail:
            return None  # evaluating/saving blips: their results have log lines of their own
        text = f"step {e.step}: {e.state}" + (f" — {e.detail}" if e.detail else "")
        return ("error" if e.state == "failed" else "info"), text
    if isinstance(e, ev.CommandApplied):
        return "info", f"step {e.step}: {applied_text(e, commands.get(e.command_id))}"
    if isinstance(e, ev.CommandRejected):
        return "warning", f"step {e.step}: {e.kind} rejected — {e.reason}"
    if isinstance(e, ev.CheckpointSaved):
        return "info", f"step {e.step}: checkpoint ({e.reason}) → {e.path}"
    if isinstance(e, ev.EvalDone):
        best = " (best)" if e.is_best else ""
        return "info", (f"step {e.step}: eval val_loss {num(e.val_loss)} "
                        f"acc {num(e.val_acc)}{best}")
    if isinstance(e, ev.Alert):
        text = f"step {e.step}: {e.kind}: {e.message}"
        return ("warning" if e.kind in ("spike", "nonfinite") else "error"), text
    if isinstance(e, ev.LogLine):
        return e.level, f"step {e.step}: {e.message}"
    return None


def applied_text(e: ev.CommandApplied, cmd: ev.Command | None = None) -> str:
    """'set_lr 1e-3 → 5e-4' style summary of an applied command."""
    name = e.kind
    if e.kind == "set_hparam" and cmd is not None:
        name = str(cmd.args.get("name", name))
    elif e.kind == "set_lr":
        name = "lr"
    if e.old is None and e.new is None:
        text = f"{name} applied"
    else:
        text = f"{name} {_val(e.old)} → {_val(e.new)}"
    return text + (f" ({e.detail})" if e.detail else "")
