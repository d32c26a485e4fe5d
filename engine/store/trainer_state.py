"""A Trainer's state in a checkpoint: what is saved, and restoring it (resume, warm start).

Functions over explicit objects (TrainingState), each returning what it restored; the file
format itself (atomic writes, safe loads, finding the newest good file) is checkpoint_file.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..build.optim import build_optimizer
from ..build.schedule import LRSchedule
from ..config.hot import HotValues
from ..config.plan import StepPlan
from ..config.schema import Config
from ..control.events import CheckpointReason
from ..errors import CheckpointError
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
    """Resume: put every part back exactly as it was saved (same config, same run)."""
    ckpt.load_model_state(ts.model, obj["model"], source)
    ts.optimizer.load_state_dict(obj["optimizer"])
    ts.schedule.load_state_dict(obj["schedule"])
    if ts.scaler is not None and obj.get("scaler"):
        ts.scaler.load_state_dict(obj["scaler"])
    ts.progress.load(Progress.from_dict(obj))
    ts.hot.restore(obj.get("hot"))
    ckpt.set_rng_state(obj["rng"])


@dataclass
class WarmStart:
    """What a warm start carried over, and the sentence the log and events.jsonl carry."""

    restored: list[str] = field(default_factory=list)
    note: str = ""


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
    if old_optim.get("name") != cfg.optim.name:
        why_not = f"optim.name changed from {old_optim.get('name')} to {cfg.optim.name}"
    else:
        fresh_groups = [{k: v for k, v in g.items() if k != "params"} for g in ts.optimizer.param_groups]
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
    if "optimizer" in restored and old_sched == new_sched and old_optim == new_optim:
        try:
            ts.schedule.load_state_dict(obj["schedule"])
            restored.append("schedule")
        except (ValueError, KeyError, TypeError, CheckpointError):
            pass
    if "schedule" not in restored:
        ts.schedule = LRSchedule(ts.optimizer, cfg.schedule, plan.steps_per_epoch, plan.total_steps)
    if ts.scaler is not None and obj.get("scaler") and "optimizer" in restored:
        ts.scaler.load_state_dict(obj["scaler"])

    p = Progress.from_dict(obj)
    same_batches = (old_data.get("batch_size") == cfg.data.batch_size
                    and old_train.get("grad_accum", 1) == cfg.train.grad_accum)
    # with another batch size the old position in the epoch no longer lines up: start the epoch over
    ts.progress.load(Progress(p.step, p.epoch, p.batch_in_epoch if same_batches else 0, p.best_val_loss))
    if obj.get("rng"):
        ckpt.set_rng_state(obj["rng"])

    if len(restored) == 3:
        parts = "weights, optimizer and schedule restored"
    elif "optimizer" in restored:
        parts = "weights and optimizer restored; schedule rebuilt from the edited config"
    else:
        parts = f"weights restored; optimizer state rebuilt because {why_not}"
    return WarmStart(restored, f"warm start from {source} (step {p.step}): {parts}")


def best_val(obj: dict[str, Any]) -> float:
    return float(obj.get("best_val_loss", math.inf))
