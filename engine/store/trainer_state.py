"""Saving and restoring a Trainer: checkpoints, exact resume, warm start from another run.

A mixin of Trainer, as `commands.py` is: the same attributes (model, optimizer,
schedule, scaler, step counters, run directory), the file format in `checkpoint.py`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from . import checkpoint_file as ckpt
from ..control import events as ev
from ..errors import CheckpointError
from ..build.optim import build_optimizer
from ..build.schedule import LRSchedule


class CheckpointState:
    """`state_dict` / `save_checkpoint` out; `_restore` (resume) and `_warm_restore` in."""

    def _weights_finite(self) -> bool:
        return bool(torch.stack([torch.isfinite(p).all() for p in self.model.parameters()]).all())

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": ckpt.FORMAT,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": ckpt.rng_state(),
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "best_val_loss": self.best_val_loss,
            "hot": {"grad_clip": self.grad_clip, "log_every": self.log_every,
                    "eval_every": self.eval_every, "checkpoint_every": self.checkpoint_every},
            "config": self.cfg.to_dict(),
        }

    def save_checkpoint(self, reason: str) -> Path | None:
        """Write a checkpoint atomically; a failure raises an alert and training goes on."""
        self._flush()
        name = {"last": "last.pt", "best": "best.pt"}.get(reason, f"step-{self.step:07d}.pt")
        path = self.run_dir / "checkpoints" / name
        if not self._weights_finite():
            self._alert("nonfinite", f"checkpoint at step {self.step} not written: the weights hold NaN/inf; "
                                     "the previous checkpoint is the last good state")
            return None
        prev = self.state
        self._set_state("saving")
        try:
            ckpt.atomic_save(self.state_dict(), path)
        except OSError as e:
            self._alert("save_failed", f"could not write checkpoint {path}: {e.strerror or e}. "
                                       "The previous checkpoint is intact; training goes on.")
            self._set_state(prev)
            return None
        if reason in ("periodic", "request"):
            ckpt.prune(self.run_dir, self.cfg.train.keep_last)
        self.log.event("checkpoint", self.step, path=str(path), reason=reason)
        self.log.set_state(last_checkpoint=str(path), step=self.step)
        self.emit(ev.CheckpointSaved(self.step, str(path), reason))
        self._set_state(prev)
        return path

    def _restore(self, obj: dict[str, Any]) -> None:
        src = str(self._resume_path)
        ckpt.load_model_state(self.model, obj["model"], src)
        self.model.to(self.device)
        self.optimizer.load_state_dict(obj["optimizer"])
        self.schedule.load_state_dict(obj["schedule"])
        if self.scaler is not None and obj.get("scaler"):
            self.scaler.load_state_dict(obj["scaler"])
        self.step = int(obj["step"])
        self.epoch = int(obj["epoch"])
        self.batch_in_epoch = int(obj["batch_in_epoch"])
        self.best_val_loss = float(obj.get("best_val_loss", math.inf))
        hot = obj.get("hot") or {}
        self.grad_clip = hot.get("grad_clip", self.grad_clip)
        self.log_every = hot.get("log_every", self.log_every)
        self.eval_every = hot.get("eval_every", self.eval_every)
        self.checkpoint_every = hot.get("checkpoint_every", self.checkpoint_every)
        ckpt.set_rng_state(obj["rng"])

    def _warm_restore(self, obj: dict[str, Any]) -> list[str]:
        """Start this new run from another run's checkpoint: weights always, the rest where it still fits.

        Returns the parts restored; sets `warm_note`, the sentence the log and events.jsonl carry.
        """
        cfg = self.cfg
        src = str(self.warm_start)
        old = obj.get("config") or {}
        old_optim, old_sched = old.get("optim") or {}, old.get("schedule") or {}
        old_data, old_train = old.get("data") or {}, old.get("train") or {}
        ckpt.load_model_state(self.model, obj["model"], src)  # CheckpointError lists what does not fit
        self.model.to(self.device)
        restored, why_not = ["weights"], ""

        new_optim, new_sched = cfg.to_dict()["optim"], cfg.to_dict()["schedule"]
        if old_optim.get("name") != cfg.optim.name:
            why_not = f"optim.name changed from {old_optim.get('name')} to {cfg.optim.name}"
        else:
            fresh_groups = [{k: v for k, v in g.items() if k != "params"} for g in self.optimizer.param_groups]
            try:
                self.optimizer.load_state_dict(obj["optimizer"])
            except (ValueError, KeyError, CheckpointError) as e:
                why_not = f"its parameter groups no longer match ({str(e).splitlines()[0][:120]})"
                self.optimizer = build_optimizer(self.model, cfg.optim)
            else:
                restored.append("optimizer")
                if old_optim != new_optim or old_sched != new_sched:
                    # moments kept; hyperparameters (and the LR the new schedule starts from) as edited
                    for g, fresh in zip(self.optimizer.param_groups, fresh_groups):
                        g.update(fresh)
        if "optimizer" in restored and old_sched == new_sched and old_optim == new_optim:
            try:
                self.schedule.load_state_dict(obj["schedule"])
                restored.append("schedule")
            except (ValueError, KeyError, TypeError, CheckpointError):
                pass
        if "schedule" not in restored:
            self.schedule = LRSchedule(self.optimizer, cfg.schedule, self.steps_per_epoch, self.total_steps)
        if self.scaler is not None and obj.get("scaler") and "optimizer" in restored:
            self.scaler.load_state_dict(obj["scaler"])

        self.step = int(obj.get("step", 0))
        self.epoch = int(obj.get("epoch", 0))
        same_batches = (old_data.get("batch_size") == cfg.data.batch_size
                        and old_train.get("grad_accum", 1) == cfg.train.grad_accum)
        # with another batch size the old position in the epoch no longer lines up: start the epoch over
        self.batch_in_epoch = int(obj.get("batch_in_epoch", 0)) if same_batches else 0
        self.best_val_loss = float(obj.get("best_val_loss", math.inf))
        if obj.get("rng"):
            ckpt.set_rng_state(obj["rng"])
        if cfg.run.parent is None:
            cfg.run.parent = str(self.warm_start.resolve().parent.parent)
        if cfg.run.parent_step is None:
            cfg.run.parent_step = self.step

        if len(restored) == 3:
            parts = "weights, optimizer and schedule restored"
        elif "optimizer" in restored:
            parts = "weights and optimizer restored; schedule rebuilt from the edited config"
        else:
            parts = f"weights restored; optimizer state rebuilt because {why_not}"
        self.warm_note = f"warm start from {src} (step {self.step}): {parts}"
        return restored
