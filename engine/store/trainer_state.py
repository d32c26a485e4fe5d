"""A Trainer's state in a checkpoint: what is saved, and restoring it (resume, warm start).

Functions over explicit objects (TrainingState), each returning what it restored; the file
format itself (atomic writes, safe loads, finding the newest good file) is checkpoint_file.py.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..build.freeze import Transfer
from ..build.optim import build_optimizer, set_hparam
from ..build.schedule import LRSchedule, ScheduleEnded
from ..config import hot
from ..config import resume as resume_rules
from ..config.hot import HotValues
from ..config.plan import StepPlan, continued
from ..config.schema import Config, from_dict
from ..control.events import CheckpointReason
from ..errors import CheckpointError, UserError
from ..loop.progress import Progress
from . import checkpoint_file as ckpt


@dataclass
class TrainingState:
    """Everything a checkpoint captures, held by the Trainer."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    scaler: Any                      # torch.amp.GradScaler, or None
    progress: Progress
    hot: HotValues
    config: Config
    transfer: Transfer | None = None  # freezes and unfreezes since the start (replayed on a resume)


def weights_finite(model: torch.nn.Module) -> bool:
    """True when no parameter holds NaN or inf (one host sync)."""
    return bool(torch.stack([torch.isfinite(p).all() for p in model.parameters()]).all())


def state_dict(ts: TrainingState) -> dict[str, Any]:
    """The checkpoint's content: tensors and plain values only (loads with weights_only=True)."""
    return {
        "format": ckpt.FORMAT,
        "model": ts.model.state_dict(),
        "optimizer": ts.optimizer.state_dict(),
        "schedule": ts.schedule.state_dict(),
        "scaler": ts.scaler.state_dict() if ts.scaler is not None else None,
        "rng": ckpt.rng_state(),
        **ts.progress.to_dict(),
        "hot": dict(ts.hot),
        "config": ts.config.to_dict(),
        "transfer": list(ts.transfer.ops) if ts.transfer is not None else [],
    }


def checkpoint_path(run_dir: Path, reason: str, step: int) -> Path:
    """last.pt and best.pt; step-N.pt for periodic ones (rotated); step-N-<reason>.pt for the rest (kept)."""
    name = {CheckpointReason.LAST: "last.pt", CheckpointReason.BEST: "best.pt"}.get(reason)
    if name is None:
        name = f"step-{step:07d}.pt" if reason == CheckpointReason.PERIODIC else f"step-{step:07d}-{reason}.pt"
    return Path(run_dir) / "checkpoints" / name


def write(ts: TrainingState, path: Path, reason: str, keep_last: int) -> None:
    """Write a checkpoint atomically at `path` (see checkpoint_path); periodic ones beyond keep_last
    are rotated away. Raises OSError."""
    ckpt.atomic_save(state_dict(ts), path)
    if reason == CheckpointReason.PERIODIC:
        ckpt.prune(path.parent.parent, keep_last)


def restore(ts: TrainingState, obj: dict[str, Any], source: str) -> None:
    """Put every part back exactly as it was saved (resume() adds what the config changed)."""
    ckpt.load_model_state(ts.model, obj["model"], source)
    if ts.transfer is not None and obj.get("transfer"):
        # the same freezes and unfreezes again, so the optimizer's saved groups find their twins
        ts.transfer.replay(ts.optimizer, ts.schedule, obj["transfer"])
    ts.optimizer.load_state_dict(obj["optimizer"])
    ts.schedule.load_state_dict(obj["schedule"])
    if ts.scaler is not None and obj.get("scaler"):
        ts.scaler.load_state_dict(obj["scaler"])
    ts.progress.load(Progress.from_dict(obj))
    ts.hot.restore(obj.get("hot"))
    ckpt.set_rng_state(obj["rng"])


@dataclass
class GoingOn:
    """How a run that goes on from a checkpoint (resume, warm start) was fitted to its config."""

    plan: StepPlan                                        # its length, counting the steps already done
    notes: list[str] = field(default_factory=list)        # one sentence per change, for the log
    events: list[dict[str, Any]] = field(default_factory=list)  # the same, for events.jsonl
    changed: bool = False                                 # the config differs from the checkpoint's


def _continued(ts: TrainingState, plan: StepPlan) -> StepPlan:
    p, t = ts.progress, ts.config.train
    try:
        return continued(plan, p.step, p.epoch, p.batch_in_epoch, t.epochs, t.max_steps)
    except ValueError as e:
        raise UserError(str(e)) from None


def _retime(ts: TrainingState, plan: StepPlan, out: GoingOn) -> None:
    """Fit the restored schedule to the run's (new) end: raises ScheduleEnded when nothing is left to fit."""
    old = ts.schedule.total_steps
    accum = max(1, plan.micro_per_epoch // plan.steps_per_epoch)
    note = ts.schedule.retime(plan.total_steps - ts.progress.step,
                              min(ts.progress.batch_in_epoch // accum, plan.steps_per_epoch))
    if note:
        out.notes.append(note)
        out.events.append({"kind": "schedule_retimed", "old_total": old, "new_total": ts.schedule.total_steps,
                           "run_total": plan.total_steps, "detail": note})


def resume(ts: TrainingState, obj: dict[str, Any], source: str, run_dir: Path, plan: StepPlan) -> GoingOn:
    """Resume: the checkpoint restored, then the config's changes applied (config/resume.py's table).

    A change that would make another run is refused (UserError) before anything is restored;
    hot settings go through the live commands' code; a new length refits the schedule.
    """
    old = _saved_config(obj)
    found = resume_rules.changes(old, ts.config.to_dict()) if old is not None else []
    refused = [c for c in found if c.kind == resume_rules.Kind.REFUSED]
    if refused:
        raise UserError(resume_rules.refusal(str(run_dir), refused))
    restore(ts, obj, source)
    notes, events = [], []
    of = {k: [c for c in found if c.kind == k] for k in resume_rules.Kind}
    if of[resume_rules.Kind.SPLIT]:
        # the same samples per optimizer step in other pieces: the place in the epoch, in samples, stays
        old_bs, new_bs = int(old["data"]["batch_size"]), ts.config.data.batch_size
        ts.progress.batch_in_epoch = ts.progress.batch_in_epoch * old_bs // new_bs
        notes.append(f"{_texts(of[resume_rules.Kind.SPLIT])}: each optimizer step sees the same "
                     f"{new_bs * ts.config.train.grad_accum} samples, in pieces of {new_bs}")
        events.append(_event(of[resume_rules.Kind.SPLIT]))
    out = GoingOn(_continued(ts, plan), notes, events, changed=bool(found))
    for c in of[resume_rules.Kind.HOT]:
        detail = _apply_hot(ts, c)
        out.notes.append(f"{c.text()} applied at step {ts.progress.step}" + (f" ({detail})" if detail else ""))
        out.events.append({**_event([c]), **({"detail": detail} if detail else {})})
    for c in of[resume_rules.Kind.HARMLESS]:
        out.notes.append(f"{c.text()} applied")
        out.events.append(_event([c]))
    lengths = of[resume_rules.Kind.LENGTH]
    if lengths:
        out.notes.append(f"{_texts(lengths)}: the run now ends at step {out.plan.total_steps}")
        out.events.append({**_event(lengths), "run_total": out.plan.total_steps})
    try:
        _retime(ts, out.plan, out)
    except ScheduleEnded as e:
        words = " ".join(f"{c.path}={c.new}" for c in lengths)
        raise UserError(f"resume: {e}, so there is nothing of it left to stretch over the run's new end (step "
                        f"{out.plan.total_steps}): the added steps would train at that LR. Nothing was resumed; "
                        f"the run is untouched. To train longer with a new schedule, start a new run from this "
                        f"one's weights: danlu run --warm-start {run_dir} {words}") from None
    return out


def _texts(changes: list[resume_rules.Change]) -> str:
    return "; ".join(c.text() for c in changes)


def _event(changes: list[resume_rules.Change]) -> dict[str, Any]:
    """events.jsonl's record of config changes a resume applied."""
    if len(changes) == 1:
        c = changes[0]
        return {"kind": "resume_change", "key": c.path, "old": c.old, "new": c.new}
    return {"kind": "resume_change", "key": [c.path for c in changes], "old": [c.old for c in changes],
            "new": [c.new for c in changes]}


def _saved_config(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The checkpoint's config, resolved by today's schema (None when it no longer validates)."""
    try:
        return from_dict(copy.deepcopy(obj.get("config") or {})).to_dict()
    except UserError:
        return None


def _apply_hot(ts: TrainingState, c: resume_rules.Change) -> str:
    """A hot setting changed on a resume, applied as the live command applies it; returns a detail."""
    h = hot.BY_PATH[c.path]
    try:
        if h.applied_by == "schedule":  # optim.lr: the schedule rescaled, as the live editor does
            factor = float(c.new) / float(c.old)
            ts.schedule.set_lr(factor=factor)
            return f"the schedule rescaled x{factor:.4g}; LR now {ts.schedule.lrs()[0]:.4g}"
        if h.applied_by == "optimizer":
            return set_hparam(ts.optimizer, h.name, c.new, schedule=ts.schedule).detail
        ts.hot[h.name] = hot.check(h.name, c.new)  # wins over the value the checkpoint carried
        return ""
    except ValueError as e:
        raise UserError(f"resume: {c.path} cannot become {c.new}: {e}. Nothing was resumed; the run is "
                        "untouched.") from None


def warm_source(path: Path, warn: Any = None) -> tuple[Path, dict[str, Any]]:
    """The checkpoint a warm start begins from: the file named, or a run directory's newest good one."""
    path = Path(path)
    if path.is_dir():
        return ckpt.find_latest(path, warn=warn)
    return path, ckpt.load(path)


@dataclass
class WarmStart:
    """What a warm start carried over, and the sentence the log and events.jsonl carry."""

    restored: list[str] = field(default_factory=list)
    note: str = ""
    going_on: GoingOn | None = None  # its length and the schedule's refit


def warm_start(ts: TrainingState, obj: dict[str, Any], source: str, plan: StepPlan) -> WarmStart:
    """Start a new run from another run's checkpoint: weights always, the rest where it still fits.

    May replace ts.optimizer and ts.schedule (rebuilt from the new config).
    """
    cfg = ts.config
    old = obj.get("config") or {}
    old_optim, old_sched = old.get("optim") or {}, old.get("schedule") or {}
    old_data, old_train = old.get("data") or {}, old.get("train") or {}
    ckpt.load_model_state(ts.model, obj["model"], source)  # CheckpointError lists what does not fit
    restored, why_not = ["weights"], ""

    new = cfg.to_dict()
    new_optim, new_sched = new["optim"], new["schedule"]
    fresh_groups = [{k: v for k, v in g.items() if k != "params"} for g in ts.optimizer.param_groups]
    if old_optim.get("name") != cfg.optim.name:
        why_not = f"optim.name changed from {old_optim.get('name')} to {cfg.optim.name}"
    else:
        try:
            ts.optimizer.load_state_dict(obj["optimizer"])
        except (ValueError, KeyError, CheckpointError) as e:
            why_not = f"its parameter groups no longer match ({str(e).splitlines()[0][:120]})"
            ts.optimizer = build_optimizer(ts.model, cfg.optim)
        else:
            restored.append("optimizer")
            if old_optim != new_optim or old_sched != new_sched:
                # moments kept; hyperparameters (and the LR the new schedule starts from) as edited
                for g, fresh in zip(ts.optimizer.param_groups, fresh_groups):
                    g.update(fresh)
    p = Progress.from_dict(obj)
    same_batches = (old_data.get("batch_size") == cfg.data.batch_size
                    and old_train.get("grad_accum", 1) == cfg.train.grad_accum)
    # with another batch size the old position in the epoch no longer lines up: start the epoch over
    ts.progress.load(Progress(p.step, p.epoch, p.batch_in_epoch if same_batches else 0, p.best_val_loss))
    # the new run's length counts the steps already done (another batch size: other steps per epoch)
    going_on = GoingOn(_continued(ts, plan))
    remaining = going_on.plan.total_steps - p.step

    sched_why = "the schedule was rebuilt from the edited config"
    if "optimizer" in restored and old_sched == new_sched and old_optim == new_optim:
        try:
            ts.schedule.load_state_dict(obj["schedule"])
            _retime(ts, going_on.plan, going_on)
            restored.append("schedule")
        except ScheduleEnded as e:
            sched_why = f"{e}, so a new one starts"
        except (ValueError, KeyError, TypeError, CheckpointError):
            going_on.notes, going_on.events = [], []
            sched_why = "the checkpoint's schedule did not load, so it was rebuilt"
    if "schedule" not in restored:
        # a fresh schedule (its warmup included) over what is left of the run, on its own clock, from
        # the config's LRs (the groups hold the LRs where a schedule left them, warmup included)
        for g, fresh in zip(ts.optimizer.param_groups, build_optimizer(ts.model, cfg.optim).param_groups):
            g["lr"] = fresh["lr"]
            g.pop("initial_lr", None)  # torch's schedulers only set it where it is missing
        ts.schedule = LRSchedule(ts.optimizer, cfg.schedule, plan.steps_per_epoch, max(1, remaining))
    if ts.scaler is not None and obj.get("scaler") and "optimizer" in restored:
        ts.scaler.load_state_dict(obj["scaler"])
    if obj.get("rng"):
        ckpt.set_rng_state(obj["rng"])

    if len(restored) == 3:
        parts = "weights, optimizer and schedule restored"
    elif "optimizer" in restored:
        parts = f"weights and optimizer restored; {sched_why}"
    else:
        parts = f"weights restored; optimizer state rebuilt because {why_not}"
    if "schedule" not in restored:
        parts += f" (it runs over the {remaining} steps left)"
    return WarmStart(restored, f"warm start from {source} (step {p.step}, ends at step "
                               f"{going_on.plan.total_steps}): {parts}", going_on)


def best_val(obj: dict[str, Any]) -> float:
    return float(obj.get("best_val_loss", math.inf))
