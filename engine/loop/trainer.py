"""The training loop: device-aware, steerable between optimizer steps, never stalling on telemetry.

Lifecycle (after torchtune's recipes): setup -> train -> save_checkpoint -> cleanup. Read top to
bottom: `setup` builds the run's parts (build_run.py: data, model, optimizer, schedule, a restored
checkpoint) and opens its directory, log and socket; `run` trains and ends the run; `_train` is the
loop, each optimizer step made of micro-batches (step.py: forward/backward, clip, update) over the
epoch's batches (loaders.py); between steps, `_boundary` applies commands (commands.py); evaluation
is evaluate.py, the faults (NaN/inf, out of memory, a crash) faults.py, the per-step metrics
step_metrics.py, the checkpointed state store/trainer_state.py. The Trainer talks to the outside only
through a Channel: it applies commands at step boundaries and emits events; it never waits on whoever
reads them.
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

from ..build.schedule import LRSchedule
from ..config.hot import HotValues
from ..config.schema import Config
from ..control import events as ev
from ..control.channel import Channel
from ..control.events import AlertKind, CheckpointReason, State
from ..errors import UserError
from ..store import trainer_state
from ..store.run_lock import RunLock
from ..store.runlog import RunLog, new_run_dir, write_config
from . import build_run, commands, faults, freezing, loaders, profile
from . import evaluate as evaluation
from .build_run import RunParts
from .heap import frozen_heap
from .layer_norms import LayerNorms
from .progress import Progress, SkipStreak, Stop, StopReason
from .step import clip_grads, forward_backward, update_weights
from .step_metrics import StepMetrics
from .telemetry import SystemSampler


def _part(name: str) -> property:
    """A Trainer attribute that is one of the run's built parts: None before setup."""
    return property(lambda t: getattr(t.parts, name) if t.parts is not None else None)


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
        self.parts: RunParts | None = None  # data, model, optimizer, schedule (build_run.py)
        self.params: list[torch.nn.Parameter] = []  # the trainable ones: what clipping and the norm read
        self.run_dir: Path | None = None
        self.log: RunLog | None = None
        self.metrics: StepMetrics | None = None
        self.layer_norms: LayerNorms | None = None  # with monitor.layer_norms_every
        self.profile: profile.StepProfile | None = None  # a torch.profiler window asked for (profile.py)
        self.val_loader: DataLoader | None = None
        self.sampler: SystemSampler | None = None
        self._lock: RunLock | None = None   # this process trains the run directory (held until cleanup)
        # faults (faults.py)
        self._nonfinite: str | None = None  # set by a flush that saw NaN/inf; acted on at the boundary
        self._bad_values: str | None = None  # the last non-finite values a flush saw
        self._skips = SkipStreak()          # nan_policy skip: the steps skipped in a row
        # (step, epoch, batch_in_epoch) as the optimizer step under way began: a crash mid-step rolls back to it
        self._step_start: tuple[int, int, int] | None = None
        self._first_step = 0                 # the step this process began at (after a resume, not 0)
        self._last_eval_step = -1

    # ------------------------------------------------------------------ views
    @property
    def step(self) -> int:
        return self.progress.step

    @property
    def epoch(self) -> int:
        return self.progress.epoch

    @property
    def total_steps(self) -> int:
        return self.parts.plan.total_steps if self.parts is not None else 0

    # the run's built parts (build_run.RunParts) under the names callers use; None before setup
    plan = _part("plan")
    placement = _part("placement")
    device = _part("device")
    bundle = _part("bundle")
    fit = _part("fit")              # the model with its loss and input rules
    state = _part("state")          # what a checkpoint captures (store/trainer_state.py)
    warm_note = _part("warm_note")  # what a warm start carried over

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
        """Build the run's parts, then open its directory, log and control socket, and announce it."""
        cfg, p = self.cfg, self.progress
        if self.resume_dir is not None:
            self._lock = RunLock.acquire(self.resume_dir)  # first: a run trained by another live process is refused
        self.parts = parts = build_run.build(cfg, p, resume_dir=self.resume_dir, warm_start=self.warm_start,
                                             warn=self._warn)
        if parts.warm_from is not None:
            self.warm_start = parts.warm_from
        if parts.resumed_from is not None:
            self.run_dir = self.resume_dir
            self.last_checkpoint = LastCheckpoint(p.step, parts.resumed_from, "resume", written=False)
            if parts.going_on.changed:  # a later resume reads the config this one runs with
                write_config(self.run_dir, cfg.to_yaml())
        else:
            self.run_dir = new_run_dir(cfg.run.out_dir, cfg.run.name)
            self._lock = RunLock.acquire(self.run_dir)
            write_config(self.run_dir, cfg.to_yaml())
        model = self.state.model
        model.to(self.device)
        self.params = [q for q in model.parameters() if q.requires_grad]
        self.log = RunLog(self.run_dir)
        if cfg.monitor.layer_norms_every:
            # with model.freeze, the frozen layers too (0 until unfrozen): the names are fixed at the start
            self.layer_norms = LayerNorms(model, list(model.parameters()) if cfg.model.freeze else self.params)
        self.metrics = StepMetrics(self.log, self.emit, start_step=p.step,
                                   layer_names=self.layer_norms.names if self.layer_norms else None)
        for kind, fields in parts.origin_events(cfg):
            self.log.event(kind, p.step, **fields)
        self.log.set_state(state=State.RUNNING, step=p.step, total_steps=parts.plan.total_steps,
                           pid=os.getpid(), name=cfg.run.name, stop_reason=None, fault=None, error=None)
        if self.control is not None:
            try:
                self.control.open(self.run_dir, self.log, cfg.to_dict())
            except OSError as e:
                self._warn(f"control socket not opened ({e}): `danlu ctl` and `danlu attach` cannot reach this run")
        self.val_loader = loaders.val_loader(parts.bundle, cfg, pin_memory=self.device.type == "cuda")
        self._first_step = p.step
        self.sampler = SystemSampler(self.device)
        self.sampler.start()
        self.profile = profile.from_config(self)
        self.emit(parts.started(cfg, self.run_dir))
        for note in parts.notes(cfg):
            self._log("info", note)
        for warning in parts.warnings:
            self._warn(warning)

    # ------------------------------------------------------------------ the run
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

    # ------------------------------------------------------------------ the loop
    def _train(self) -> None:
        p, accum, parts, st = self.progress, self.cfg.train.grad_accum, self.parts, self.state
        total, micro_per_epoch = parts.plan.total_steps, parts.plan.micro_per_epoch
        fit, placement, device = parts.fit, parts.placement, parts.device
        move_to = device if device.type != "cpu" else None  # on the CPU .to() is a no-op that costs a dispatch
        while p.step < total:
            micro, loss_acc = 0, None
            batches = iter(loaders.train_batches(parts.bundle, self.cfg, p.epoch, p.batch_in_epoch,
                                                 pin_memory=device.type == "cuda"))
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
        watch = self.parts.overfit_watch
        if watch is not None:
            verdict = watch.observe(*self.metrics.flushed)
            if verdict:
                self._alert(AlertKind.NOT_OVERFITTING, verdict)

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
