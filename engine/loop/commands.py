"""What each command does to a running Trainer: a dispatch table, applied only at step boundaries.

Every handler returns an Answer (old -> new, a detail) or raises ValueError with a reason a
person can act on; `apply` turns that into CommandApplied or CommandRejected, and logs it to
events.jsonl. The trainer calls `apply` between optimizer steps, never inside one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ..build.optim import set_hparam as set_optimizer_hparam
from ..config import hot
from ..control import events as ev
from ..control.events import CheckpointReason, CommandKind, LrMode, State
from ..errors import UserError
from .progress import Stop, StopReason

if TYPE_CHECKING:
    from .trainer import Trainer


@dataclass
class Answer:
    """What an applied command changed: old -> new, a detail line, extra fields for events.jsonl."""

    old: Any = None
    new: Any = None
    detail: str = ""
    log: dict[str, Any] = field(default_factory=dict)
    state: str | None = None    # the run's new state, announced after the answer


def _pause(t: Trainer, cmd: ev.Command) -> Answer:
    if t.paused:
        raise ValueError("already paused")
    t.pause()
    return Answer(detail=f"paused after step {t.progress.step}", state=State.PAUSED)


def _resume(t: Trainer, cmd: ev.Command) -> Answer:
    if not t.paused:
        raise ValueError("not paused")
    t.unpause()
    return Answer(detail=f"resumed at step {t.progress.step + 1}", state=State.RUNNING)


def _set_lr(t: Trainer, cmd: ev.Command) -> Answer:
    a = cmd.args
    mode = a.get("mode", LrMode.RESCALE)
    old, new = t.state.schedule.set_lr(value=a.get("value"), factor=a.get("factor"), group=a.get("group"),
                                       mode=mode)
    return Answer(old, new, f"{mode}; from step {t.progress.step + 1}", {"mode": mode, "group": a.get("group")})


def _set_hparam(t: Trainer, cmd: ev.Command) -> Answer:
    name, value, group = cmd.args.get("name"), cmd.args.get("value"), cmd.args.get("group")
    row = hot.HOT.get(name)
    if row is None or row.applied_by == "schedule":
        raise ValueError(f"{name!r} is not a setting set_hparam changes; it takes: {', '.join(hot.HPARAMS)}"
                         + (". Change the LR with set_lr." if name == "lr" else
                            ". Change others in the config and restart from a checkpoint."))
    if row.applied_by == "trainer":
        if group is not None:
            raise ValueError(f"{name} is one setting for the whole run, not per group")
        value = hot.check(name, value)
        old = t.state.hot[name]
        t.state.hot[name] = value
        return Answer(old, value, log={"name": name})
    change = set_optimizer_hparam(t.state.optimizer, name, value, group=group, schedule=t.state.schedule)
    return Answer(change[0], change[1], change.detail, {"name": name})


def _save_checkpoint(t: Trainer, cmd: ev.Command) -> Answer:
    path = t.save_checkpoint(CheckpointReason.REQUEST)
    if path is None:
        raise ValueError("checkpoint not written (see the alert)")
    return Answer(None, t.relative(path), log={"path": str(path)})


def _eval_now(t: Trainer, cmd: ev.Command) -> Answer:
    res = t.evaluate()
    if res is None:
        raise ValueError("no validation set (data.val_fraction is 0)")
    return Answer(None, res)


def _stop(t: Trainer, cmd: ev.Command) -> Answer:
    save = bool(cmd.args.get("save", True))
    t.request_stop(Stop(StopReason.REQUEST, save))
    return Answer(detail="saving and stopping" if save else "stopping without saving", log={"save": save},
                  state=State.STOPPING)


HANDLERS: dict[str, Callable[[Trainer, ev.Command], Answer]] = {
    CommandKind.PAUSE: _pause,
    CommandKind.RESUME: _resume,
    CommandKind.SET_LR: _set_lr,
    CommandKind.SET_HPARAM: _set_hparam,
    CommandKind.SAVE_CHECKPOINT: _save_checkpoint,
    CommandKind.EVAL_NOW: _eval_now,
    CommandKind.STOP: _stop,
}


def apply(t: Trainer, cmd: ev.Command) -> None:
    """Run one command and answer it: CommandApplied, or CommandRejected with the reason."""
    step = t.progress.step
    handler = HANDLERS.get(cmd.kind)
    try:
        if handler is None:
            raise ValueError(f"unknown command {cmd.kind!r}; commands are: {', '.join(HANDLERS)}")
        a = handler(t, cmd)
    except (ValueError, TypeError, UserError) as e:
        with t.log.lock:  # the line and its answer together (RunLog's docstring says why)
            t.log.event("rejected", step, command=cmd.kind, args=cmd.args, reason=str(e), **_by(cmd))
            t.emit(ev.CommandRejected(cmd.id, cmd.kind, step, str(e)))
        return
    with t.log.lock:
        t.log.event(cmd.kind, t.progress.step, old=a.old, new=a.new, **({"detail": a.detail} if a.detail else {}),
                    **a.log, **_by(cmd))
        t.emit(ev.CommandApplied(cmd.id, cmd.kind, t.progress.step, a.old, a.new, a.detail))
    if a.state is not None:
        t.set_state(a.state)


def _by(cmd: ev.Command) -> dict[str, Any]:
    """Who sent a command, for events.jsonl: the pid of a control-socket client (none: this process)."""
    return {"by_pid": cmd.sender} if cmd.sender is not None else {}
