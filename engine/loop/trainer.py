"""The training loop: device-aware, steerable between optimizer steps, never stalling on telemetry.

Lifecycle (after torchtune's recipes): setup -> train -> save_checkpoint -> cleanup. The
Trainer holds its collaborators and calls them: the builders (build/), the checkpointed
state (store/trainer_state.py), the per-step metrics (step_metrics.py), the command table
(commands.py). It talks to the outside only through a Channel: it applies commands at step
boundaries and emits events; it never waits on whoever reads them.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from ..build.data import DataBundle, build_datasets, dataset_size, loader_workers, overfit, stream_batches
from ..build.device import Placement, place
from ..build.fit import Fit, fit_model
from ..build.freeze import Transfer
from ..build.models import count_parameters
from ..build.pretrained import normalization
from ..build.optim import build_optimizer
from ..build.sampler import EpochSampler
from ..build.schedule import LRSchedule
from ..config.hot import HotValues
from ..config.plan import StepPlan, plan_steps
from ..config.preflight import plan_findings, preflight
from ..config.schema import Config
from ..control import events as ev
from ..control.channel import Channel
from ..control.events import AlertKind, CheckpointReason, State
from ..errors import ConfigError, UserError
from ..store import checkpoint_file as ckpt
from ..store import trainer_state
from ..store.run_lock import RunLock
from ..store.runlog import RunLog, new_run_dir, write_config
from ..store.trainer_state import TrainingState
from . import commands, faults, freezing, profile
from . import evaluate as evaluation
from .overfit import OverfitWatch, describe as describe_overfit
from .heap import frozen_heap
from .layer_norms import LayerNorms
from .progress import Progress, SkipStreak, Stop, StopReason
from .step import clip_grads, forward_backward, update_weights
from .step_metrics import StepMetrics
from .telemetry import SystemSampler


@dataclass(frozen=True)
class LastCheckpoint:
    """The newest checkpoint of the run known to be whole: written by this process, or resumed from."""

    step: int
    path: Path
    reason: str      # a CheckpointReason, or "resume" for the file this process started from
    written: bool    # by this process


class Trainer:
    """One run: built from a Config, driven by commands, reporting through events."""

    def __init__(self, cfg: Config, channel: Channel | None = None, *,
                 resume: str | os.PathLike | None = None,
                 warm_start: str | os.PathLike | None = None,
                 interactive: bool = True, control: Any = None):
        if resume is not None and warm_start is not None:
            raise UserError("resume and warm_start are exclusive: resume continues a run in its own "
                            "directory, warm_start begins a new run from a checkpoint")
        self.cfg = cfg
        self.channel = channel or Channel()
        self.resume_dir = Path(resume) if resume else None
        # a checkpoint file to start a NEW run (new config, new run directory) from
        self.warm_start = Path(warm_start) if warm_start else None
        # With a person watching, a fault pauses; without one (headless), "pause" would wait forever.
        self.interactive = interactive
        self.control = control   # a ControlServer (engine/control/socket_server.py), opened once the run dir exists
        self.status: str = State.STARTING
        self.final_state: str = State.FAILED
        self.error: str | None = None
        self.fault: str | None = None   # why the run ended on a fault (NaN/inf, out of memory); None if not
        self.last_checkpoint: LastCheckpoint | None = None
        self.progress = Progress()
        self.paused = False
        self.stop: Stop | None = None
        self._external_stop = threading.Event()   # set by signal handlers (flag only)
        # built in setup()
        self.placement: Placement | None = None
        self.device: torch.device | None = None
        self.bundle: DataBundle | None = None
        self.fit: Fit | None = None       # the model with its loss and input rules
        self.plan: StepPlan | None = None
        self.state: TrainingState | None = None
        self.params: list[torch.nn.Parameter] = []
        self.run_dir: Path | None = None
        self.log: RunLog | None = None
        self.metrics: StepMetrics | None = None
        self.layer_norms: LayerNorms | None = None  # with monitor.layer_norms_every
        self.profile: profile.StepProfile | None = None  # a torch.profiler window asked for (profile.py)
        self.val_loader: DataLoader | None = None
        self.sampler: SystemSampler | None = None
        self.warm_note: str | None = None
        self.warnings: list[str] = []  # setups that may be meant but likely are not (logged at the start)
        self._move_batches = False     # on the CPU .to() is a no-op that still costs a dispatch
        self._nonfinite: str | None = None  # set by a flush that saw NaN/inf; acted on at the boundary
        self._skips = SkipStreak()          # nan_policy skip: the steps skipped in a row
        self._lock: RunLock | None = None   # this process trains the run directory (held until cleanup)
        # (step, epoch, batch_in_epoch) as the optimizer step under way began: a crash mid-step rolls back to it
        self._step_start: tuple[int, int, int] | None = None
        self._last_eval_step = -1
        self._first_step = 0                 # the step this process began at (after a resume, not 0)
        self._bad_values: str | None = None  # the last non-finite values a flush saw
        self.overfit_watch: OverfitWatch | None = None  # train.overfit_batches: is the loss falling?

    # ------------------------------------------------------------------ views
    @property
    def step(self) -> int:
        return self.progress.step

    @property
    def epoch(self) -> int:
        return self.progress.epoch

    @property
    def total_steps(self) -> int:
        return self.plan.total_steps if self.plan else 0

    @property
    def model(self) -> torch.nn.Module:
        return self.state.model

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self.state.optimizer

    @property
    def schedule(self) -> LRSchedule:
        return self.state.schedule

    @property
    def hot(self) -> HotValues:
        return self.state.hot

    def relative(self, path: Path | str) -> str:
        """A path inside the run directory as people read it: relative to the run."""
        try:
            return str(Path(path).relative_to(self.run_dir))
        except (ValueError, TypeError):
            return str(path)

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        cfg = self.cfg
        resume_obj = resume_path = None
        if self.resume_dir is not None:
            self._lock = RunLock.acquire(self.resume_dir)  # first: a run trained by another live process is refused
            resume_path, resume_obj = ckpt.find_latest(self.resume_dir, warn=self._warn)
        warm_obj = None
        if self.warm_start is not None:  # a checkpoint, or a run directory's newest good one
            self.warm_start, warm_obj = trainer_state.warm_source(self.warm_start, warn=self._warn)
        preflight(cfg, new_run=self.resume_dir is None)  # what `danlu check` and `danlu run` check
        self._seed(cfg.run.seed, cfg.run.deterministic)
        self.placement = place(cfg.run.device, cfg.run.precision)
        self.device = self.placement.device
        self._move_batches = self.device.type != "cpu"

        self.bundle = build_datasets(cfg.data, cfg.run.seed, normalize=normalization(cfg.model))
        if cfg.train.overfit_batches:
            self.bundle = overfit(self.bundle, cfg.train.overfit_batches, cfg.data.batch_size)
            self.bundle.notes.append(describe_overfit(cfg.train.overfit_batches, cfg.data.batch_size))
            self.overfit_watch = OverfitWatch(start=cfg.schedule.warmup_steps)
        try:
            self.plan = plan_steps(dataset_size(self.bundle.train), cfg.data.batch_size, cfg.train.grad_accum,
                                   cfg.train.epochs, cfg.train.max_steps)
        except ValueError as e:
            raise UserError(str(e)) from None
        has_val = self.bundle.val is not None and dataset_size(self.bundle.val) != 0  # None: a stream
        problems, self.warnings = plan_findings(cfg, self.plan, has_val)
        if problems:
            raise ConfigError(problems)
        self.fit = fit_model(cfg, self.bundle, self.placement)  # lazy layers shaped and init applied
        model = self.fit.model
        optimizer = build_optimizer(model, cfg.optim)
        self.state = TrainingState(
            model=model, optimizer=optimizer,
            schedule=LRSchedule(optimizer, cfg.schedule, self.plan.steps_per_epoch, self.plan.total_steps),
            scaler=torch.amp.GradScaler(self.device.type) if self.placement.use_scaler else None,
            progress=self.progress, hot=HotValues.from_config(cfg.to_dict()), config=cfg,
            transfer=Transfer(model, cfg.optim.no_decay_bias_norm))

        going_on = None  # a run that goes on from a checkpoint: its length and what changed
        if warm_obj is not None:
            # before the run directory exists: a checkpoint that does not fit leaves nothing behind
            warm = trainer_state.warm_start(self.state, warm_obj, str(self.warm_start), self.plan)
            self.warm_note, going_on = warm.note, warm.going_on
            self.plan = going_on.plan
            if cfg.run.parent is None:
                cfg.run.parent = str(self.warm_start.resolve().parent.parent)
            if cfg.run.parent_step is None:
                cfg.run.parent_step = self.progress.step
        if resume_obj is not None:  # the config's changes applied or refused (config/resume.py)
            going_on = trainer_state.resume(self.state, resume_obj, str(resume_path), self.resume_dir, self.plan)
            self.plan, self.run_dir = going_on.plan, self.resume_dir
            self.last_checkpoint = LastCheckpoint(self.progress.step, resume_path, "resume", written=False)
            if going_on.changed:  # a later resume reads the config this one runs with
                write_config(self.run_dir, cfg.to_yaml())
        else:
            self.run_dir = new_run_dir(cfg.run.out_dir, cfg.run.name)
            self._lock = RunLock.acquire(self.run_dir)
            write_config(self.run_dir, cfg.to_yaml())
        self.state.model.to(self.device)
        self.params = [p for p in self.state.model.parameters() if p.requires_grad]
        self.log = RunLog(self.run_dir)
        if cfg.monitor.layer_norms_every:
            # with model.freeze, the frozen layers too (0 until unfrozen): the names are fixed at the start
            tracked = list(self.state.model.parameters()) if cfg.model.freeze else self.params
            self.layer_norms = LayerNorms(self.state.model, tracked)
        self.metrics = StepMetrics(self.log, self.emit, start_step=self.progress.step,
                                   layer_names=self.layer_norms.names if self.layer_norms else None)
        if resume_obj is not None:
            self.log.event("resumed", self.progress.step, checkpoint=str(resume_path))
        for event in going_on.events if going_on is not None else []:
            self.log.event(event.pop("kind"), self.progress.step, **event)
        if warm_obj is not None:
            self.log.event("warm_start", self.progress.step, checkpoint=str(self.warm_start),
                           parent=cfg.run.parent, parent_step=cfg.run.parent_step, restored=warm.restored,
                           detail=self.warm_note)
        self.log.set_state(state=State.RUNNING, step=self.progress.step, total_steps=self.plan.total_steps,
                           pid=os.getpid(), name=cfg.run.name, stop_reason=None, fault=None, error=None)
        if self.control is not None:
            try:
                self.control.open(self.run_dir, self.log, cfg.to_dict())
            except OSError as e:
                self._warn(f"control socket not opened ({e}): `danlu ctl` and `danlu attach` cannot reach this run")

        if self.bundle.val is not None and dataset_size(self.bundle.val) != 0:  # None: a stream
            # its own generator: creating its iterator must not draw from the global RNG,
            # or a resumed run (which evaluates at other moments) would diverge
            self.val_loader = DataLoader(self.bundle.val, batch_size=cfg.data.batch_size * 2, shuffle=False,
                                         num_workers=loader_workers(self.bundle.val, cfg.data.num_workers), pin_memory=self.device.type == "cuda",
                                         persistent_workers=cfg.data.num_workers > 0,
                                         generator=torch.Generator().manual_seed(cfg.run.seed))
        self._first_step = self.progress.step
        self.sampler = SystemSampler(self.device)
        self.sampler.start()
        self.profile = profile.from_config(self)

        self.emit(ev.RunStarted(
            run_dir=str(self.run_dir), device=self.placement.label, precision=self.placement.precision,
            total_steps=self.plan.total_steps, steps_per_epoch=self.plan.steps_per_epoch, epochs=self.plan.epochs,
            start_step=self.progress.step, batch_size=cfg.data.batch_size * cfg.train.grad_accum,
            groups=[g.get("name", str(i)) for i, g in enumerate(self.optimizer.param_groups)],
            schedule=self.schedule.describe(), grad_clip=self.hot["grad_clip"],
            num_params=count_parameters(self.model), config=cfg.to_dict(),
            trainable_params=count_parameters(self.model, trainable_only=True)))
        if self.warm_note:
            self._log("info", self.warm_note)
        for note in going_on.notes if going_on is not None else []:
            self._log("info", note)
        for note in cfg.notes + self.bundle.notes + self.fit.notes:
            self._log("info", note)
        for warning in self.warnings:
            self._warn(warning)

    def _seed(self, seed: int, deterministic: bool) -> None:
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

    # ------------------------------------------------------------------ events
    def emit(self, event: Any) -> None:
        self.channel.emit(event)

    def set_state(self, state: str, detail: str = "") -> None:
        if state != self.status:
            if self.log is not None and State.PAUSED in (state, self.status):  # `danlu ls` shows pauses
                self.log.set_state(state=state, step=self.progress.step)
            self.status = state
            self.emit(ev.StatusChanged(state, self.progress.step, detail))

    def _log(self, level: str, message: str) -> None:
        self.emit(ev.LogLine(self.progress.step, level, message))

    def _warn(self, message: str) -> None:
        self.emit(ev.LogLine(self.progress.step, "warning", message))

    def _alert(self, kind: str, message: str, details: str = "", **fields: Any) -> None:
        """An Alert for the screen and one events.jsonl line (with `fields` for tools reading it)."""
        if self.log is None:
            self.emit(ev.Alert(self.progress.step, kind, message, details))
            return
        with self.log.lock:  # the line and its event together (RunLog's docstring says why)
            self.log.event(kind, self.progress.step, message=message, details=details, **fields)
            self.emit(ev.Alert(self.progress.step, kind, message, details))

    # ------------------------------------------------------------------ control
    def request_stop(self, stop: Stop | bool = True) -> None:
        """Ask the loop to stop at the next step boundary. Thread-safe: signal handlers call it
        (with a bool, `save`, for a signal)."""
        if isinstance(stop, bool):
            self._external_stop.set()
            stop = Stop(StopReason.SIGNAL, stop)
        self.stop = stop if self.stop is None else self.stop.merge(stop)

    def pause(self) -> None:
        """Hold at this step boundary (the caller announces the new state)."""
        self.paused = True
        self.flush()
        self.metrics.pause()

    def unpause(self) -> None:
        self.paused = False
        self.metrics.resume()

    # ------------------------------------------------------------------ loop
    def run(self) -> str:
        """Set up and train; returns the final state (finished, stopped, failed)."""
        try:
            self.setup()
        except UserError as e:
            self.error = str(e)
            self.emit(ev.Alert(0, AlertKind.BAD_INPUT, str(e)))
            self.set_state(State.FAILED, str(e))
            self.final_state = State.FAILED
            self._cleanup()
            raise
        except BaseException:
            self._cleanup()
            raise
        try:
            self.set_state(State.RUNNING)
            with frozen_heap():  # full GC passes skip the setup's heap while training
                self._train()
            if self.profile is not None:  # the run ended inside a profile's window: report what it saw
                self.profile.finish(self, "the run ended first")
                self.profile = None
            self.flush()  # a stop leaves the loop between flushes: every step goes to metrics.jsonl
            faults.at_run_end(self)
            stop = self.stop
            if stop is not None and stop.reason == StopReason.SIGNAL:
                self.log.event("stop", self.progress.step, reason="signal", save=stop.save)
            if stop is None or stop.save:
                self.save_checkpoint(CheckpointReason.LAST)
            faults.weights_fault(self)
            self.final_state = State.STOPPED if stop is not None or self.fault else State.FINISHED
            self.log.set_state(state=self.final_state, step=self.progress.step,
                               best_val_loss=self.progress.best_val_loss,
                               stop_reason=str(stop.reason) if stop is not None else None, fault=self.fault)
            if self.fault:
                self.set_state(self.final_state, f"stopped on a fault at step {self.progress.step}: {self.fault}")
            else:
                self.set_state(self.final_state, f"{self.final_state} at step {self.progress.step}")
        except UserError as e:  # the user's data or code found wanting mid-run: the message, not a traceback
            faults.failed_on_input(self, e)
            raise
        except BaseException as e:  # noqa: BLE001 - report everything, re-raise nothing into the thread
            faults.crashed(self, e)
        finally:
            self._cleanup()
        return self.final_state

    def _cleanup(self) -> None:
        if self.profile is not None:
            self.profile.abandon()
        if self.sampler is not None:
            self.sampler.stop()
        if self.control is not None:  # the last events reach the clients, then the socket goes
            self.control.close(f"the run ended ({self.final_state})")
        if self.log is not None:
            self.log.flush()
            self.log.close()
        self.val_loader = None  # lets persistent workers exit
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _train_loader(self) -> Any:
        cfg, p = self.cfg, self.progress
        if self.bundle.stream:
            return stream_batches(self.bundle.train, cfg.data.batch_size, cfg.data.num_workers,
                                  self.device.type == "cuda", skip=p.batch_in_epoch, seed=cfg.run.seed)
        sampler = EpochSampler(len(self.bundle.train), cfg.run.seed, p.epoch,
                               start=p.batch_in_epoch * cfg.data.batch_size, shuffle=not cfg.train.overfit_batches)
        g = torch.Generator()
        g.manual_seed(cfg.run.seed * 7919 + p.epoch)  # worker seeds do not touch the global RNG
        return DataLoader(self.bundle.train, batch_size=cfg.data.batch_size, sampler=sampler,
                          num_workers=cfg.data.num_workers, pin_memory=self.device.type == "cuda",
                          drop_last=True, generator=g)

    def _train(self) -> None:
        p, accum, st = self.progress, self.cfg.train.grad_accum, self.state
        total, micro_per_epoch = self.plan.total_steps, self.plan.micro_per_epoch
        fit, placement = self.fit, self.placement
        move_to = self.device if self._move_batches else None
        while p.step < total:
            micro, loss_acc = 0, None
            batches = iter(self._train_loader())
            while True:
                # a profile times the wait for each batch; without one this is the plain next()
                batch = next(batches, profile.END) if self.profile is None else self.profile.fetch(batches)
                if batch is profile.END:
                    break
                x, y = batch
                if p.batch_in_epoch >= micro_per_epoch:
                    break  # leftover micro-batches that cannot fill an optimizer step
                if micro == 0:
                    self._step_start = (p.step, p.epoch, p.batch_in_epoch)
                    if self.profile is not None:
                        self.profile = self.profile.step_done(self)
                    self._boundary()
                    if self.stop is not None:
                        return
                    if self.profile is not None:
                        self.profile.step_begins(self, p.step + 1)
                try:
                    loss = forward_backward(st.model, fit, placement, st.scaler, x, y, accum, move_to)
                except torch.OutOfMemoryError as e:
                    faults.on_oom(self, e, micro_done=micro)
                    micro, loss_acc = 0, None
                    if self.stop is not None:
                        return
                    break  # the loader restarts from the start of the step that failed
                d = loss.detach()
                if d.dtype != torch.float32:
                    d = d.float()
                loss_acc = d if loss_acc is None else loss_acc + d
                micro += 1
                p.batch_in_epoch += 1
                if micro == accum:
                    stepped = self._optimizer_step(loss_acc)
                    micro, loss_acc = 0, None
                    if p.step >= total:
                        break
                    if stepped:
                        self._after_step()  # a skipped step repeats no step's eval or checkpoint
                    elif self.stop is not None:
                        return
            if p.batch_in_epoch < micro_per_epoch:
                if p.step >= total:
                    break  # the run's last step came mid-epoch
                continue  # left the epoch early (out of memory): re-enter it where the step began
            self._epoch_end()
        self.flush()
        if self.val_loader is not None and self._last_eval_step != p.step:
            self.evaluate()

    def _optimizer_step(self, loss: torch.Tensor) -> bool:
        """Clip and step; False when nan_policy skip dropped the step (the weights did not move)."""
        st, p, every = self.state, self.progress, self.cfg.monitor.layer_norms_every
        # sampled steps only, before clipping like the total norm; stays on the device until the flush
        sampled = self.layer_norms if every and (p.step + 1) % every == 0 else None
        norm, layers = clip_grads(st.optimizer, st.scaler, self.params, st.hot["grad_clip"], sampled)
        if self.cfg.monitor.nan_policy == "skip" and faults.skipped(self, loss, norm):
            return False
        lrs = st.schedule.current  # the LRs this step uses (host floats, no sync)
        amp_skipped = update_weights(st.optimizer, st.scaler)
        p.step += 1
        if not amp_skipped:  # an fp16 step the GradScaler skipped did not move the weights: nor the schedule
            st.schedule.on_step()
        # epochs are counted from 1 in everything people read (events, metrics.jsonl)
        self.metrics.record(p.step, p.epoch + 1, loss, norm, lrs, amp_skipped=amp_skipped, layer_norms=layers)
        return True

    def _after_step(self) -> None:
        hot, step = self.state.hot, self.progress.step
        if self.metrics.due(hot["log_every"], time.monotonic()):
            self.flush()
        if hot["eval_every"] and step % hot["eval_every"] == 0:
            self.evaluate()
        if hot["checkpoint_every"] and step % hot["checkpoint_every"] == 0:
            self.save_checkpoint(CheckpointReason.PERIODIC)

    def _epoch_end(self) -> None:
        p, hot = self.progress, self.state.hot
        p.epoch += 1
        p.batch_in_epoch = 0
        self.state.schedule.on_epoch_end()
        if self.cfg.model.unfreeze:
            freezing.scheduled(self)  # before the epoch's checkpoint, which then holds the new groups
        self.flush()
        if not hot["eval_every"]:
            self.evaluate()
        if not hot["checkpoint_every"] and p.step < self.plan.total_steps:
            self.save_checkpoint(CheckpointReason.PERIODIC)

    # ------------------------------------------------------------------ metrics
    def flush(self) -> None:
        """Report the buffered steps (one host transfer); a non-finite value is acted on at the boundary."""
        cfg = self.cfg
        bad = self.metrics.flush(
            total_steps=self.plan.total_steps, grad_clip=self.state.hot["grad_clip"],
            batch_size=cfg.data.batch_size * cfg.train.grad_accum, phase=self.state.schedule.phase,
            memory=self.sampler.memory(), spike_factor=cfg.monitor.spike_factor)
        if bad is not None:
            self._alert(AlertKind.NONFINITE, bad, f"nan_policy={cfg.monitor.nan_policy}")
            self._nonfinite = bad
        if self.overfit_watch is not None:
            verdict = self.overfit_watch.observe(*self.metrics.flushed)
            if verdict:
                self._alert(AlertKind.NOT_OVERFITTING, verdict)

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self) -> dict[str, float] | None:
        """Validation loss and accuracy (None for losses without one) now; None without a validation set."""
        if self.val_loader is None:
            return None
        self.flush()
        prev = self.status
        self.set_state(State.EVALUATING)
        p = self.progress
        val_loss, val_acc = evaluation.evaluate(self.state.model, self.val_loader, self.fit, self.placement)
        is_best = val_loss < p.best_val_loss
        if is_best:
            p.best_val_loss = val_loss
        self._last_eval_step = p.step
        epoch = p.epoch_of_last_step()
        with self.log.lock:
            self.log.metric({"step": p.step, "epoch": epoch, "val_loss": val_loss, "val_acc": val_acc})
            self.log.flush()
            self.emit(ev.EvalDone(p.step, epoch, val_loss, val_acc, p.best_val_loss, is_best))
        self.state.schedule.on_eval(val_loss)
        self.log.set_state(step=p.step, best_val_loss=p.best_val_loss)
        self.set_state(prev if prev != State.EVALUATING else State.RUNNING)
        if is_best and p.step > 0:
            self.save_checkpoint(CheckpointReason.BEST)
        return {"val_loss": val_loss, "val_acc": val_acc}

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, reason: str) -> Path | None:
        """Write a checkpoint atomically; a failure raises an alert and training goes on."""
        self.flush()
        step = self.progress.step
        if not trainer_state.weights_finite(self.state.model):
            self._alert(AlertKind.NONFINITE, f"checkpoint at step {step} not written: the weights hold NaN/inf; "
                                             "the previous checkpoint is the last good state")
            return None
        prev = self.status
        self.set_state(State.SAVING)
        path = trainer_state.checkpoint_path(self.run_dir, reason, step)
        try:
            trainer_state.write(self.state, path, reason, self.cfg.train.keep_last)
        except OSError as e:
            self._alert(AlertKind.SAVE_FAILED, f"could not write checkpoint {path}: {e.strerror or e}. "
                                               "The previous checkpoint is intact; training goes on.")
            self.set_state(prev)
            return None
        self.last_checkpoint = LastCheckpoint(step, path, reason, written=True)
        with self.log.lock:
            self.log.event("checkpoint", step, path=str(path), reason=reason)
            self.emit(ev.CheckpointSaved(step, str(path), reason))
        self.log.set_state(last_checkpoint=str(path), step=step)
        self.set_state(prev)
        return path

    # ------------------------------------------------------------------ between steps
    def _boundary(self) -> None:
        """Between optimizer steps: act on a fault, apply commands; stay here while paused."""
        if self._nonfinite is not None:
            bad, self._nonfinite = self._nonfinite, None
            faults.on_nonfinite(self, bad)
        if self._external_stop.is_set() and self.stop is not None:
            if self.status != State.STOPPING:
                self.set_state(State.STOPPING, "a signal asked to stop" + ("; saving a checkpoint first"
                                                                           if self.stop.save else ""))
            return
        while True:
            cmd = self.channel.poll_command()
            while cmd is not None:
                commands.apply(self, cmd)
                cmd = self.channel.poll_command()
            if not self.paused or self.stop is not None:
                return
            cmd = self.channel.poll_command(timeout=0.1)
            if cmd is not None:
                commands.apply(self, cmd)
