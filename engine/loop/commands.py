"""What each command does to a running Trainer, applied only at step boundaries.

A mixin of Trainer: every handler answers with CommandApplied (old -> new, the
step) or CommandRejected (a reason a person can act on), and logs to events.jsonl.
"""

from __future__ import annotations

import math
import time
from typing import Any

from ..control import events as ev
from ..errors import UserError
from ..build.optim import set_hparam


class CommandHandlers:
    """The `_cmd_<kind>` handlers; `_apply` routes a Command to one of them."""

    def _apply(self, cmd: ev.Command) -> None:
        try:
            handler = getattr(self, f"_cmd_{cmd.kind}")
        except AttributeError:
            self._reject(cmd, f"unknown command {cmd.kind!r}")
            return
        try:
            handler(cmd)
        except (ValueError, TypeError, UserError) as e:
            self._reject(cmd, str(e))

    def _ack(self, cmd: ev.Command, old: Any = None, new: Any = None, detail: str = "", **log: Any) -> None:
        self.emit(ev.CommandApplied(cmd.id, cmd.kind, self.step, old, new, detail))
        self.log.event(cmd.kind, self.step, old=old, new=new, **({"detail": detail} if detail else {}), **log)

    def _reject(self, cmd: ev.Command, reason: str) -> None:
        self.emit(ev.CommandRejected(cmd.id, cmd.kind, self.step, reason))
        self.log.event("rejected", self.step, command=cmd.kind, args=cmd.args, reason=reason)

    def _cmd_pause(self, cmd: ev.Command) -> None:
        if self.paused:
            raise ValueError("already paused")
        self.paused = True
        self._flush()
        self._ack(cmd, detail=f"paused after step {self.step}")
        self._set_state("paused")

    def _cmd_resume(self, cmd: ev.Command) -> None:
        if not self.paused:
            raise ValueError("not paused")
        self.paused = False
        self._t_flush, self._steps_at_flush = time.monotonic(), self.step
        self._ack(cmd, detail=f"resumed at step {self.step + 1}")
        self._set_state("running")

    def _cmd_set_lr(self, cmd: ev.Command) -> None:
        a = cmd.args
        old, new = self.schedule.set_lr(value=a.get("value"), factor=a.get("factor"),
                                        group=a.get("group"), mode=a.get("mode", "rescale"))
        self._ack(cmd, old, new, detail=f"{a.get('mode', 'rescale')}; from step {self.step + 1}",
                  mode=a.get("mode", "rescale"), group=a.get("group"))

    def _cmd_set_hparam(self, cmd: ev.Command) -> None:
        name, value, group = cmd.args.get("name"), cmd.args.get("value"), cmd.args.get("group")
        if name == "grad_clip":
            if value is not None:
                value = float(value)
                if not (math.isfinite(value) and value > 0):
                    raise ValueError(f"grad_clip must be a positive number (or none to disable), got {value}")
            old, self.grad_clip = self.grad_clip, value
        elif name in ("log_every", "eval_every", "checkpoint_every"):
            if value is not None:
                if isinstance(value, bool) or not float(value).is_integer() or int(value) < 1:
                    raise ValueError(f"{name} must be a whole number >= 1, got {value}")
                value = int(value)
            elif name == "log_every":
                raise ValueError("log_every must be a whole number >= 1")
            old = getattr(self, name)
            setattr(self, name, value)
        elif name in ev.HOT_HPARAMS:
            old, value = set_hparam(self.optimizer, name, value, group=group, schedule=self.schedule)
        else:
            raise ValueError(f"{name!r} cannot change mid-run; hot settings are: {', '.join(ev.HOT_HPARAMS)}. "
                             "Change others in the config and restart from a checkpoint.")
        self._ack(cmd, old, value, name=name)

    def _cmd_save_checkpoint(self, cmd: ev.Command) -> None:
        path = self.save_checkpoint("request")
        if path is None:
            raise ValueError("checkpoint not written (see the alert)")
        self.emit(ev.CommandApplied(cmd.id, cmd.kind, self.step, None, str(path), f"saved {path}"))

    def _cmd_eval_now(self, cmd: ev.Command) -> None:
        res = self.evaluate()
        if res is None:
            raise ValueError("no validation set (data.val_fraction is 0)")
        self._ack(cmd, None, {"val_loss": res[0], "val_acc": res[1]})

    def _cmd_stop(self, cmd: ev.Command) -> None:
        save = bool(cmd.args.get("save", True))
        self._stop_requested = save
        self._ack(cmd, detail="saving and stopping" if save else "stopping without saving", save=save)
        self._set_state("stopping")
