"""LRSchedule: the single owner of the learning rate during a run (warmup, torch scheduler, a person's changes)."""

from __future__ import annotations

import math
import warnings
from collections import Counter
from typing import Any

import torch

from ..errors import CheckpointError, UserError
from ..control.events import LrMode
from ..config.hot import HOT
from ..config.knobs import SCHEDULERS, scheduler_defaults
from ..config.numbers import as_float

# The schedulers whose length depends on the run's, and the argument that holds it (derived when empty).
LENGTH_ARGS = {"cosine": "T_max", "onecycle": "total_steps"}


class ScheduleEnded(ValueError):
    """A length-derived schedule has already reached its end: there is no rest of it to stretch."""


# The LR's upper bound is the config's (a larger value is a typo), so a typed LR and a configured one agree.
MAX_LR = float(HOT["lr"].knob.max)


class LRSchedule:
    """Linear warmup in front of any torch scheduler, plus per-group rescale/override set by a person.

    Effective LR of group g = override[g] if set, else sched_lr[g] * scale[g] * warmup_factor.
    torch's chainable schedulers compute the next LR from group["lr"], so the scheduler's own
    (unscaled) LR is kept in `_sched_lrs` and put back in the group around each wrapped step.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: Any, steps_per_epoch: int, total_steps: int):
        self.optimizer = optimizer
        self.name: str = cfg.name
        cls_name, default_interval, _ = SCHEDULERS[cfg.name]
        self.warmup_steps = max(0, int(cfg.warmup_steps or 0))
        self.warmup_start_factor = float(getattr(cfg, "warmup_start_factor", 0.0) or 0.0)
        self.steps_per_epoch = max(1, int(steps_per_epoch))
        self.total_steps = max(1, int(total_steps))
        # Plateau reacts to evaluations whatever the config says: it has nothing else to watch.
        self.interval: str = "eval" if cfg.name == "plateau" else (getattr(cfg, "interval", None) or default_interval)
        self.step_count = 0
        n = len(optimizer.param_groups)
        self._scale: list[float] = [1.0] * n
        self._override: list[float | None] = [None] * n
        self._sched: Any = None
        self._rise_end = -1.0
        # the length argument derived from the run (T_max, total_steps), or None when the config set it
        self.length_arg: str | None = None
        self.length_set: Any = None  # what the config set instead
        if cls_name is not None:
            args = self._derive_args(cfg)
            cls = getattr(torch.optim.lr_scheduler, cls_name)
            try:
                self._sched = cls(optimizer, **args)
            except ValueError as e:
                if "cycle_momentum" in str(e):
                    raise UserError(f"schedule.cycle_momentum: {type(optimizer).__name__.lower()} has no "
                                    f"momentum or beta1 to cycle; set schedule.cycle_momentum=false") from None
                raise UserError(f"schedule: {cfg.name}: {e}") from None
            if cfg.name == "onecycle":
                self._rise_end = float(args["pct_start"] * self._sched.total_steps) - 1
        self._sched_lrs: list[float] = [float(g["lr"]) for g in optimizer.param_groups]
        self._write()

    # --- construction ---------------------------------------------------------

    def _remaining(self) -> int:
        """Run length after warmup in the wrapped scheduler's own units (steps or epochs)."""
        if self.interval == "epoch":
            epochs = math.ceil(self.total_steps / self.steps_per_epoch)
            # An epoch counts if at least one of its steps comes after warmup.
            return max(1, epochs - self.warmup_steps // self.steps_per_epoch)
        return max(1, self.total_steps - self.warmup_steps)

    def _derive_args(self, cfg: Any) -> dict[str, Any]:
        args = scheduler_defaults(cfg.name)
        args.update(cfg.args or {})
        groups = self.optimizer.param_groups
        length = LENGTH_ARGS.get(cfg.name)
        if length is not None:
            if args.get(length) is None:
                args[length] = self._remaining()
                self.length_arg = length
            else:
                self.length_set = args[length]
        if cfg.name == "lambda":
            args["lr_lambda"] = _lambda(args.pop("fn", None), self.interval)
        if cfg.name == "onecycle":
            if args.get("max_lr") is None:
                args["max_lr"] = [float(g["lr"]) for g in groups]
            else:
                # One peak for the run, kept in the groups' lr_mult ratios.
                args["max_lr"] = [float(args["max_lr"]) * float(g.get("lr_mult", 1.0)) for g in groups]
            args["pct_start"] = float(args["pct_start"])
        return {k: v for k, v in args.items() if v is not None}

    # --- another length: resume or warm start with other max_steps/epochs/batch --

    def retime(self, remaining: int, into_epoch: int = 0) -> str | None:
        """Fit the rest of the schedule to `remaining` more optimizer steps (`into_epoch` steps into the
        current epoch); call after load_state_dict. Returns what changed in words, or None.

        Only cosine and onecycle depend on the run's length, and only when their length was derived
        (T_max, total_steps empty): the part of the schedule still ahead is stretched or shrunk so the
        LR goes on from its value now and reaches its end at the new last step, never climbing back.
        Inside the warmup that is simply the length derived again. Other schedules go on as they
        were. Raises ScheduleEnded when the schedule has already reached its end.
        """
        old_total, self.total_steps = self.total_steps, max(1, self.step_count + int(remaining))
        name = LENGTH_ARGS.get(self.name)
        if self._sched is None or name is None or remaining <= 0:
            return None
        s = self._sched
        if self.length_arg is None:
            return (None if self.total_steps == old_total else
                    f"schedule.{name}={self.length_set} is set in the config, so the {self.name} keeps its length "
                    f"while the run now ends at step {self.total_steps} of this schedule's clock")
        if self.interval == "epoch":
            units = math.ceil((into_epoch + remaining) / self.steps_per_epoch)
            units -= max(0, self.warmup_steps - self.step_count) // self.steps_per_epoch
        else:
            units = remaining - max(0, self.warmup_steps - self.step_count)
        units = max(1, units)
        unit = "epoch" if self.interval == "epoch" else "step"
        if self.name == "cosine":
            t, T = float(s.last_epoch), float(s.T_max)
            if abs((T - t) - units) < 1e-6:
                return None
            phase = t / T
            if phase >= 1 - 1e-9:
                raise ScheduleEnded(f"the cosine schedule has already reached its end (LR {self.lrs()[0]:.3g})")
            s.T_max = units / (1 - phase)     # the same fraction of the cosine is behind,
            s.last_epoch = phase * s.T_max    # and what is ahead spans `units`
            old_left = T - t
        else:  # onecycle: its phase boundaries ahead are moved, the step count stays
            t, T = int(s.last_epoch), int(s.total_steps)
            if T - t == units:
                return None
            if t >= T - 1:
                raise ScheduleEnded(f"the one-cycle schedule has already reached its end (LR {self.lrs()[0]:.3g})")
            phases = s._schedule_phases
            if t == 0:  # not started (the warmup): the phases torch would derive for this length
                pct = (phases[0]["end_step"] + 1) / T
                ends = [pct * units - 1, 2 * pct * units - 2, units - 1] if len(phases) == 3 \
                    else [pct * units - 1, units - 1]
                for ph, end in zip(phases, ends):
                    ph["end_step"] = float(end)
            elif units > 1:
                k = (units - 1) / (T - 1 - t)  # t stays, the last step T-1 moves to t + units - 1
                for ph in phases:
                    ph["end_step"] = t + (ph["end_step"] - t) * k
            self._rise_end = float(phases[0]["end_step"])
            s.total_steps = t + units
            old_left = T - t
        where = "after the warmup" if self.step_count < self.warmup_steps else "from here"
        return (f"{self.name} schedule refitted to the run's new length: what was left of it "
                f"({_count(old_left, unit)}) now spans {_count(units, unit)} {where}, ending at the run's last step")

    # --- the run's clock ------------------------------------------------------

    def on_step(self) -> None:
        """Call after each optimizer step."""
        self.step_count += 1
        if self._sched is not None and self.step_count > self.warmup_steps:
            if self.interval == "step":
                if not self._cycle_done():
                    self._advance()
            elif self.name == "cosine_restarts" and self.interval == "epoch":
                # torch's recommended use: fractional epochs, so each cycle is smooth within an epoch.
                self._advance((self.step_count - self.warmup_steps) / self.steps_per_epoch)
        self._write()

    def on_epoch_end(self) -> None:
        """Call after each epoch."""
        if (self._sched is not None and self.interval == "epoch" and self.name != "cosine_restarts"
                and self.step_count > self.warmup_steps):
            self._advance()
            self._write()

    def on_eval(self, val_loss: float) -> None:
        """Call after each evaluation with its (host float) validation loss."""
        if self.interval == "eval" and self._sched is not None and self.step_count > self.warmup_steps:
            self._advance(float(val_loss))
            self._write()

    def _cycle_done(self) -> bool:
        # OneCycleLR raises past its last step; hold its final LR instead of killing the run.
        return self.name == "onecycle" and self._sched.last_epoch >= self._sched.total_steps

    def _advance(self, *args: Any) -> None:
        groups = self.optimizer.param_groups
        for g, group in enumerate(groups):
            group["lr"] = self._sched_lrs[g]
        self._sched.step(*args)
        self._sched_lrs = [float(group["lr"]) for group in groups]

    def _warmup_factor(self) -> float:
        if self.step_count >= self.warmup_steps:
            return 1.0
        # step k (1-based) of the warmup runs at start + (1 - start) * k / warmup_steps, so even
        # the first step learns something and the last warmup step reaches the full LR
        s = self.warmup_start_factor
        return s + (1.0 - s) * (self.step_count + 1) / self.warmup_steps

    def _write(self) -> None:
        f = self._warmup_factor()
        current = []
        for g, group in enumerate(self.optimizer.param_groups):
            o = self._override[g]
            group["lr"] = lr = o if o is not None else self._sched_lrs[g] * self._scale[g] * f
            current.append(float(lr))
        # Every LR change goes through here, so the trainer reads this per step instead of lrs():
        # a new list each time (never mutated), so it can be kept as the step's record.
        self.current: list[float] = current

    # --- new param groups (unfreezing) -----------------------------------------

    def add_groups(self, groups: list[dict[str, Any]]) -> None:
        """Add param groups (each with `params`, `name`, `lr_mult`) to the optimizer mid-run.

        Each joins as if it had been there from the start with its lr_mult: its scheduled LR is group
        0's scaled by the lr_mult ratio, the torch scheduler's per-group lists and keys (base_lrs,
        initial_lr, onecycle's max_lr/min_lr and momentum bounds) grow to cover it, and a person's
        rescale or override of group 0 carries over. Momentum and betas follow group 0 (they may have
        been changed live); the rest are the optimizer's defaults, as torch's add_param_group gives.
        """
        from .freeze import init_new_state
        opt = self.optimizer
        g0 = opt.param_groups[0]
        mult0 = float(g0.get("lr_mult", 1.0)) or 1.0
        for group in groups:
            r = float(group.get("lr_mult", 1.0)) / mult0
            n = len(opt.param_groups)
            group["lr"] = self._sched_lrs[0] * r
            for key in ("initial_lr", "max_lr", "min_lr"):  # LRs torch's schedulers keep in the group
                if key in g0:
                    group[key] = float(g0[key]) * r
            for key in ("momentum", "betas", "max_momentum", "base_momentum"):
                if key in g0:
                    group[key] = g0[key]
            free = [g for g in opt.param_groups if not g.get("wd_pinned")]
            if "weight_decay" not in group and free:
                group["weight_decay"] = free[0]["weight_decay"]
            opt.add_param_group(group)
            init_new_state(opt, group["params"])
            self._sched_lrs.append(float(group["lr"]))
            self._scale.append(self._scale[0])
            self._override.append(None if self._override[0] is None else self._override[0] * r)
            if self._sched is not None:
                s = self._sched
                for attr in ("base_lrs", "_last_lr", "max_lrs", "min_lrs"):  # LRs, one per group
                    v = getattr(s, attr, None)
                    if isinstance(v, list) and len(v) == n:
                        v.append(float(v[0]) * r)
                for attr in ("lr_lambdas", "base_momentums", "max_momentums"):
                    v = getattr(s, attr, None)
                    if isinstance(v, list) and len(v) == n:
                        v.append(v[0])
        self._write()

    # --- a person's changes ---------------------------------------------------

    def set_lr(self, value: float | None = None, factor: float | None = None, group: int | None = None,
               mode: str = LrMode.RESCALE) -> tuple[list[float], list[float]]:
        """Set the LR by value or factor, for all groups (one ratio) or one; returns (old, new) per group."""
        if mode not in tuple(LrMode):
            raise ValueError(f"mode must be one of {', '.join(LrMode)}, got {mode!r}")
        if (value is None) == (factor is None):
            raise ValueError("give exactly one of value or factor")
        x = _positive("lr" if value is not None else "factor", value if value is not None else factor)
        groups = self.optimizer.param_groups
        if group is not None and (isinstance(group, bool) or not isinstance(group, int)
                                  or not 0 <= group < len(groups)):
            names = ", ".join(f"{i} {g.get('name', '')}".strip() for i, g in enumerate(groups))
            raise ValueError(f"group {group!r} does not exist; groups are: {names}")
        idx = list(range(len(groups))) if group is None else [group]
        old = self.lrs()
        ref = idx[0]
        zero_hint = (f"the LR is 0 right now{' (warmup starts from 0)' if self.step_count < self.warmup_steps else ''}, "
                     f"so there is no level to scale from; use mode='override', or try again after the next step")
        if factor is not None:
            target = {g: old[g] * x for g in idx}
        elif old[ref] > 0:
            target = {g: old[g] * (x / old[ref]) for g in idx}
        elif mode == LrMode.OVERRIDE:
            # No current level to keep ratios from: fall back on the configured lr_mult ratios.
            mult = [float(gr.get("lr_mult", 1.0)) for gr in groups]
            target = {g: x * mult[g] / mult[ref] for g in idx}
        else:
            raise ValueError(zero_hint)
        for g, t in target.items():
            if t > MAX_LR:
                if g == ref and value is not None:
                    raise ValueError(f"lr {t:g} looks like a typo; max is {MAX_LR:g}")
                who = f"group {g}" + (f" ({groups[g]['name']})" if "name" in groups[g] else "")
                raise ValueError(f"{who} would get lr {t:g}, which looks like a typo; max is {MAX_LR:g}")
            if mode == LrMode.OVERRIDE and not t > 0:
                raise ValueError(f"the LR of group {g} is 0 right now, so a factor would hold it at 0; give a value")

        f = self._warmup_factor()
        new_scale = {}
        if mode == LrMode.RESCALE:
            for g in idx:
                level = self._sched_lrs[g] * f
                if factor is not None and (self._override[g] is None or level <= 0):
                    new_scale[g] = self._scale[g] * x
                elif level > 0:
                    new_scale[g] = target[g] / level
                else:
                    raise ValueError(zero_hint)
        for g in idx:
            if mode == LrMode.OVERRIDE:
                self._override[g] = target[g]
            else:
                # A rescale on an overridden group rejoins the schedule's shape at the new level.
                self._override[g] = None
                self._scale[g] = new_scale[g]
        self._write()
        return old, self.lrs()

    # --- what the dashboard reads ---------------------------------------------

    def lrs(self) -> list[float]:
        """Effective LR per group (host floats, no device sync)."""
        return [float(g["lr"]) for g in self.optimizer.param_groups]

    @property
    def cycles_momentum(self) -> bool:
        """True when the wrapped scheduler writes momentum/beta1 every step (onecycle)."""
        return bool(self.name == "onecycle" and self._sched.cycle_momentum)

    @property
    def phase(self) -> str:
        """warmup, override, constant, rise (onecycle) or decay."""
        if any(o is not None for o in self._override):
            return "override"
        if self.step_count < self.warmup_steps:
            return "warmup"
        if self.name == "none":
            return "constant"
        if self.name == "onecycle" and self._sched.last_epoch <= self._rise_end:
            return "rise"
        return "decay"

    def describe(self) -> str:
        """A short line such as 'cosine, warmup 100 steps'."""
        parts = ["constant" if self.name == "none" else self.name]
        if self._sched is not None and self.interval != SCHEDULERS[self.name][1]:
            parts[0] += f" per {self.interval}"
        if self.warmup_steps:
            parts.append(f"warmup {self.warmup_steps} steps")
        return ", ".join(parts)

    # --- checkpoints ----------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Plain numbers, strings, lists and dicts: loads with torch.load(weights_only=True)."""
        sched = None
        if self._sched is not None:
            sched = {k: (dict(v) if isinstance(v, Counter) else v) for k, v in self._sched.state_dict().items()}
        return {
            "name": self.name,
            "step": self.step_count,
            "total_steps": self.total_steps,
            "scale": list(self._scale),
            "override": list(self._override),
            "sched_lrs": list(self._sched_lrs),
            "scheduler": sched,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore after optimizer.load_state_dict, so the effective LRs written here win."""
        if state.get("name") != self.name:
            raise CheckpointError(f"the checkpoint's schedule is {state.get('name')!r} but the config says "
                                  f"{self.name!r}; resume with schedule.name={state.get('name')}, "
                                  f"or start a new run from the checkpoint's weights")
        n = len(self.optimizer.param_groups)
        if len(state["scale"]) != n:
            raise CheckpointError(f"the checkpoint's schedule has {len(state['scale'])} param groups but the "
                                  f"optimizer has {n}; resume with the optim.param_groups the run used")
        if self._sched is not None:
            self._sched.load_state_dict(dict(state["scheduler"]))
            if isinstance(getattr(self._sched, "milestones", None), dict):
                self._sched.milestones = Counter(self._sched.milestones)
        if self.name == "onecycle":  # its phases may have been refitted to another length (retime)
            self._rise_end = float(self._sched._schedule_phases[0]["end_step"])
        self.step_count = int(state["step"])
        self.total_steps = int(state.get("total_steps", self.total_steps))  # retime() compares with it
        self._scale = [float(v) for v in state["scale"]]
        self._override = [None if v is None else float(v) for v in state["override"]]
        self._sched_lrs = [float(v) for v in state["sched_lrs"]]
        self._write()


def _lambda(spec: Any, interval: str) -> Any:
    """The user's schedule.fn, checked on step 0 so a bad one fails at the start with its name."""
    from .imports import resolve_target
    if not spec:
        raise UserError("schedule.fn: the lambda schedule needs fn: package.module:callable")
    fn = resolve_target(str(spec), "schedule.fn")
    try:
        v = fn(0)
    except Exception as e:  # noqa: BLE001 - the user's code: any failure is theirs to see, named
        raise UserError(f"schedule.fn: {spec}(0) raised {type(e).__name__}: {e}. It is called with the "
                        f"{interval} number (an int from 0) and must return the factor on optim.lr.") from None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise UserError(f"schedule.fn: {spec}(0) returned {v!r}; it must return a finite number >= 0, "
                        "the factor on optim.lr")
    return fn


def _count(n: float, unit: str) -> str:
    return f"{n:.4g} {unit}" + ("" if n == 1 else "s")


def _positive(name: str, v: Any) -> float:
    x = as_float(name, v, "a number > 0")
    if not (math.isfinite(x) and x > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {v}")
    return x


def preview(cfg: Any, base_lr: float, steps_per_epoch: int, total_steps: int,
            val_losses: list[float] | dict[int, float] | None = None) -> list[float]:
    """LR of the first group at every step of the run, warmup included, on a dummy parameter.

    val_losses (plateau only): a list means one evaluation per epoch end, a dict maps step -> loss.
    """
    p = torch.nn.Parameter(torch.zeros(1))
    # SGD with momentum, so onecycle's cycle_momentum has something to cycle.
    opt = torch.optim.SGD([p], lr=float(base_lr), momentum=0.9)
    sched = LRSchedule(opt, cfg, steps_per_epoch, total_steps)
    spe = sched.steps_per_epoch
    by_step = dict(val_losses) if isinstance(val_losses, dict) else {}
    per_epoch = list(val_losses) if isinstance(val_losses, (list, tuple)) else []
    out = []
    group = opt.param_groups[0]
    with warnings.catch_warnings():
        # No real optimizer step happens here, which torch would otherwise warn about.
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)`")
        for s in range(1, int(total_steps) + 1):
            out.append(group["lr"])
            sched.on_step()
            if s % spe == 0:
                sched.on_epoch_end()
                e = s // spe - 1
                if e < len(per_epoch):
                    sched.on_eval(per_epoch[e])
            if s in by_step:
                sched.on_eval(by_step[s])
    return out
