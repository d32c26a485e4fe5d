"""What a run is built from, before it trains: one function, `build`, returning RunParts.

In order (after torchtune's recipe setup): the checkpoint a resume or warm start reads, the
preflight checks, seeds and determinism, the device and precision, the datasets, the step plan,
the model fitted to the data, the optimizer and LR schedule (with model.freeze's Transfer), then
the checkpoint's state restored into them. Nothing here touches a run directory: a config or a
checkpoint found wanting leaves nothing behind. The Trainer opens the run's directory, log and
socket from what this returns (trainer.py, `Trainer.setup`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ..build.data import DataBundle, dataset_size
from ..build.device import Placement, place
from ..build.fit import Fit, fit_model
from ..build.freeze import Transfer
from ..build.models import count_parameters
from ..build.optim import build_optimizer
from ..build.schedule import LRSchedule
from ..config.hot import HotValues
from ..config.plan import StepPlan, plan_steps
from ..config.preflight import plan_findings, preflight
from ..config.schema import Config
from ..control import events as ev
from ..errors import ConfigError, UserError
from ..store import checkpoint_file as ckpt
from ..store import trainer_state
from ..store.trainer_state import GoingOn, TrainingState, WarmStart
from . import loaders
from .overfit import OverfitWatch
from .progress import Progress


@dataclass
class RunParts:
    """A run's parts, built and (on a resume or warm start) restored; the Trainer holds them."""

    placement: Placement
    bundle: DataBundle
    plan: StepPlan                  # the run's length (a resume or warm start counts the steps done)
    fit: Fit                        # the model with its loss and input rules
    state: TrainingState            # what a checkpoint captures
    warnings: list[str]             # setups that may be meant but likely are not (logged at the start)
    overfit_watch: OverfitWatch | None = None   # train.overfit_batches: is the loss falling?
    going_on: GoingOn | None = None  # a run that goes on from a checkpoint: its length and what changed
    resumed_from: Path | None = None  # the checkpoint a resume restored
    warm_from: Path | None = None     # the checkpoint a warm start began from
    warm: WarmStart | None = None     # what the warm start carried over

    @property
    def device(self) -> torch.device:
        return self.placement.device

    @property
    def warm_note(self) -> str | None:
        return self.warm.note if self.warm is not None else None

    def origin_events(self, cfg: Config) -> list[tuple[str, dict[str, Any]]]:
        """events.jsonl's lines on where the run came from: resumed, the config's changes, warm start."""
        out: list[tuple[str, dict[str, Any]]] = []
        if self.resumed_from is not None:
            out.append(("resumed", {"checkpoint": str(self.resumed_from)}))
        for event in self.going_on.events if self.going_on is not None else []:
            out.append((event["kind"], {k: v for k, v in event.items() if k != "kind"}))
        if self.warm is not None:
            out.append(("warm_start", {"checkpoint": str(self.warm_from), "parent": cfg.run.parent,
                                       "parent_step": cfg.run.parent_step, "restored": self.warm.restored,
                                       "detail": self.warm.note}))
        return out

    def notes(self, cfg: Config) -> list[str]:
        """The run's info lines for the log, in the order they are told."""
        out = [self.warm.note] if self.warm is not None and self.warm.note else []
        out += self.going_on.notes if self.going_on is not None else []
        fresh = self.resumed_from is None and self.warm is None  # else the checkpoint's weights replaced them
        return out + cfg.notes + self.bundle.notes + (self.fit.weight_notes if fresh else []) + self.fit.notes

    def started(self, cfg: Config, run_dir: Path) -> ev.RunStarted:
        """The RunStarted event: what the screen shows before the first step."""
        st, plan = self.state, self.plan
        return ev.RunStarted(
            run_dir=str(run_dir), device=self.placement.label, precision=self.placement.precision,
            total_steps=plan.total_steps, steps_per_epoch=plan.steps_per_epoch, epochs=plan.epochs,
            start_step=st.progress.step, batch_size=cfg.data.batch_size * cfg.train.grad_accum,
            groups=[g.get("name", str(i)) for i, g in enumerate(st.optimizer.param_groups)],
            schedule=st.schedule.describe(), grad_clip=st.hot["grad_clip"],
            num_params=count_parameters(st.model), config=cfg.to_dict(),
            trainable_params=count_parameters(st.model, trainable_only=True))


def build(cfg: Config, progress: Progress, *, resume_dir: Path | None = None, warm_start: Path | None = None,
          warn: Callable[[str], None] | None = None) -> RunParts:
    """Build a run from `cfg`: a new one, a resume of `resume_dir`, or a warm start from `warm_start`
    (a checkpoint, or a run directory's newest good one). `progress` is the Trainer's record, which
    a restore fills in. Raises UserError (ConfigError, CheckpointError) for what the user can fix."""
    resume_obj = resume_path = None
    if resume_dir is not None:
        resume_path, resume_obj = ckpt.find_latest(resume_dir, warn=warn)
    warm_obj = None
    if warm_start is not None:  # a checkpoint, or a run directory's newest good one
        warm_start, warm_obj = trainer_state.warm_source(warm_start, warn=warn)
    preflight(cfg, new_run=resume_dir is None)  # what `danlu check` and `danlu run` check
    set_seeds(cfg.run.seed, cfg.run.deterministic)
    placement = place(cfg.run.device, cfg.run.precision)

    bundle, overfit_watch = loaders.datasets(cfg)
    try:
        plan = plan_steps(dataset_size(bundle.train), cfg.data.batch_size, cfg.train.grad_accum,
                          cfg.train.epochs, cfg.train.max_steps)
    except ValueError as e:
        raise UserError(str(e)) from None
    problems, warnings = plan_findings(cfg, plan, loaders.has_val(bundle))
    if problems:
        raise ConfigError(problems)
    fit = fit_model(cfg, bundle, placement)  # lazy layers shaped and init applied
    model = fit.model
    optimizer = build_optimizer(model, cfg.optim)
    state = TrainingState(
        model=model, optimizer=optimizer,
        schedule=LRSchedule(optimizer, cfg.schedule, plan.steps_per_epoch, plan.total_steps),
        scaler=torch.amp.GradScaler(placement.device.type) if placement.use_scaler else None,
        progress=progress, hot=HotValues.from_config(cfg.to_dict()), config=cfg,
        transfer=Transfer(model, cfg.optim.no_decay_bias_norm))
    parts = RunParts(placement, bundle, plan, fit, state, warnings, overfit_watch)

    if warm_obj is not None:
        # before the run directory exists: a checkpoint that does not fit leaves nothing behind
        warm = trainer_state.warm_start(state, warm_obj, str(warm_start), plan)
        parts.warm, parts.warm_from, parts.going_on = warm, warm_start, warm.going_on
        parts.plan = warm.going_on.plan
        if cfg.run.parent is None:
            cfg.run.parent = str(warm_start.resolve().parent.parent)
        if cfg.run.parent_step is None:
            cfg.run.parent_step = progress.step
    if resume_obj is not None:  # the config's changes applied or refused (config/resume.py)
        parts.going_on = trainer_state.resume(state, resume_obj, str(resume_path), resume_dir, parts.plan)
        parts.plan, parts.resumed_from = parts.going_on.plan, resume_path
    return parts


def set_seeds(seed: int, deterministic: bool) -> None:
    """Seed python, torch and numpy; run.deterministic's algorithms, else cuDNN's autotuner."""
    import random
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np
        np.random.seed(seed)
    except ImportError:
        pass
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
