"""The training loop: device-aware, steerable between optimizer steps, never stalling on telemetry.

Lifecycle (after torchtune's recipes): setup -> train -> save_checkpoint -> cleanup.
The loop talks to the outside only through a Channel: it applies commands at
step boundaries and emits events; it never waits on whoever reads them.
"""

from __future__ import annotations

import math
import os
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ..store import checkpoint_file as ckpt
from ..control import events as ev
from ..control.channel import Channel
from .commands import CommandHandlers
from ..config.schema import Config, from_dict
from ..build.data import build_datasets
from ..build.device import place
from ..errors import UserError
from .heap import frozen_heap
from ..build.models import build_model, count_parameters
from ..build.optim import build_optimizer
from ..store.trainer_state import CheckpointState
from ..store.runlog import RunLog, new_run_dir
from ..build.sampler import EpochSampler
from ..build.schedule import LRSchedule
from .spikes import SpikeWatch
from .telemetry import SystemSampler

FLUSH_SECONDS = 0.5


def _total_norm(params: list[torch.Tensor]) -> torch.Tensor:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    get_total_norm = getattr(torch.nn.utils, "get_total_norm", None)
    if get_total_norm is not None:
        return get_total_norm(grads, 2.0, foreach=None)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


class Trainer(CommandHandlers, CheckpointState):
    """One run: built from a Config, driven by commands, reporting through events."""

    def __init__(self, cfg: Config, channel: Channel | None = None, *,
                 resume: str | os.PathLike | None = None,
                 warm_start: str | os.PathLike | None = None):
        self.cfg = cfg
        self.channel = channel or Channel()
        self.resume_dir = Path(resume) if resume else None
        # a checkpoint file to start a NEW run (new config, new run directory) from
        self.warm_start = Path(warm_start) if warm_start else None
        if self.resume_dir is not None and self.warm_start is not None:
            raise UserError("resume and warm_start are exclusive: resume continues a run in its own "
                            "directory, warm_start begins a new run from a checkpoint")
        self.warm_note: str | None = None
        self.state = "starting"
        self.step = 0                 # optimizer steps completed
        self.epoch = 0                # current epoch (0-based)
        self.batch_in_epoch = 0       # micro-batches of this epoch already consumed
        self.best_val_loss = math.inf
        self.paused = False
        self._stop_requested: bool | None = None  # None: no stop; True/False: save or not
        self._external_stop = threading.Event()   # set by signal handlers (flag only)
        self.final_state = "failed"
        self.error: str | None = None
        # Without a person watching (headless), "pause" on a fault would wait forever: stop instead.
        self.interactive = True
        self.amp_skipped = 0          # fp16 steps the GradScaler skipped (inf/NaN gradients)
        self._nonfinite = False

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        cfg = self.cfg
        resume_obj = None
        if self.resume_dir is not None:
            path, resume_obj = ckpt.find_latest(self.resume_dir, warn=self._warn)
            self._resume_path = path
        warm_obj = ckpt.load(self.warm_start) if self.warm_start is not None else None
        self._seed(cfg.run.seed, cfg.run.deterministic)
        self.placement = place(cfg.run.device, cfg.run.precision)
        self.device = self.placement.device
        self._move_batches = self.device.type != "cpu"  # on the CPU .to() is a no-op that still costs a dispatch

        bundle = build_datasets(cfg.data, cfg.run.seed)
        self.bundle = bundle
        torch.manual_seed(cfg.run.seed)  # model init does not depend on how the data was built
        self.model = build_model(cfg.model, bundle.num_classes, bundle.input_shape).to(self.device)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(self.model, cfg.optim)

        bs = cfg.data.batch_size
        n_micro = len(bundle.train) // bs
        if n_micro < cfg.train.grad_accum:
            raise UserError(f"data.batch_size: {bs} x train.grad_accum {cfg.train.grad_accum} needs more "
                            f"samples than the training set has ({len(bundle.train)}). Lower one of them.")
        self.micro_per_epoch = n_micro
        self.steps_per_epoch = n_micro // cfg.train.grad_accum
        self.total_steps = cfg.train.epochs * self.steps_per_epoch
        if cfg.train.max_steps:
            self.total_steps = min(self.total_steps, cfg.train.max_steps)
        self.schedule = LRSchedule(self.optimizer, cfg.schedule, self.steps_per_epoch, self.total_steps)
        self.scaler = torch.amp.GradScaler(self.device.type) if self.placement.use_scaler else None

        # hot settings, changeable mid-run
        self.grad_clip = cfg.train.grad_clip
        self.log_every = cfg.monitor.log_every
        self.eval_every = cfg.train.eval_every
        self.checkpoint_every = cfg.train.checkpoint_every

        if warm_obj is not None:
            # before the run directory exists: a checkpoint that does not fit leaves nothing behind
            restored = self._warm_restore(warm_obj)
        if resume_obj is not None:
            self.run_dir = self.resume_dir
            self._restore(resume_obj)
        else:
            self.run_dir = new_run_dir(cfg.run.out_dir, cfg.run.name)
            (self.run_dir / "config.yaml").write_text(cfg.to_yaml())
        self.log = RunLog(self.run_dir)
        if resume_obj is not None:
            self.log.event("resumed", self.step, checkpoint=str(self._resume_path))
        if warm_obj is not None:
            self.log.event("warm_start", self.step, checkpoint=str(self.warm_start), parent=cfg.run.parent,
                           parent_step=cfg.run.parent_step, restored=restored, detail=self.warm_note)
        self.log.set_state(state="running", step=self.step, total_steps=self.total_steps,
                           pid=os.getpid(), name=cfg.run.name)

        pin = self.device.type == "cuda"
        self.val_loader = None
        if bundle.val is not None and len(bundle.val) > 0:
            # its own generator: creating its iterator must not draw from the global RNG,
            # or a resumed run (which evaluates at other moments) would diverge
            self.val_loader = DataLoader(bundle.val, batch_size=bs * 2, shuffle=False,
                                         num_workers=cfg.data.num_workers, pin_memory=pin,
                                         persistent_workers=cfg.data.num_workers > 0,
                                         generator=torch.Generator().manual_seed(cfg.run.seed))
        self.sampler = SystemSampler(self.device)
        self.sampler.start()

        self.emit(ev.RunStarted(
            run_dir=str(self.run_dir), device=self.placement.label, precision=self.placement.precision,
            total_steps=self.total_steps, steps_per_epoch=self.steps_per_epoch, epochs=cfg.train.epochs,
            start_step=self.step, batch_size=bs * cfg.train.grad_accum,
            groups=[g.get("name", str(i)) for i, g in enumerate(self.optimizer.param_groups)],
            schedule=self.schedule.describe(), grad_clip=self.grad_clip,
            num_params=count_parameters(self.model), config=cfg.to_dict()))
        if self.warm_note:
            self._log("info", self.warm_note)
        if cfg.notes:
            for note in cfg.notes:
                self._log("info", note)

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

    def _set_state(self, state: str, detail: str = "") -> None:
        if state != self.state:
            self.state = state
            self.emit(ev.StatusChanged(state, self.step, detail))

    def _log(self, level: str, message: str) -> None:
        self.emit(ev.LogLine(self.step, level, message))

    def _warn(self, message: str) -> None:
        self.emit(ev.LogLine(self.step, "warning", message))

    def _alert(self, kind: str, message: str, details: str = "") -> None:
        self.emit(ev.Alert(self.step, kind, message, details))
        if hasattr(self, "log"):
            self.log.event(kind, self.step, message=message, details=details)

    def request_stop(self, save: bool = True) -> None:
        """Thread-safe: ask the loop to stop at the next step boundary (signal handlers use this)."""
        self._external_stop.set()
        self._stop_requested = save if self._stop_requested is None else (self._stop_requested and save)

    # ------------------------------------------------------------------ loop
    def run(self) -> str:
        """Set up and train; returns the final state (finished, stopped, failed)."""
        try:
            self.setup()
        except UserError as e:
            self.error = str(e)
            self.emit(ev.Alert(0, "bad_input", str(e)))
            self._set_state("failed", str(e))
            self.final_state = "failed"
            raise
        try:
            self._set_state("running")
            with frozen_heap():  # full GC passes skip the setup's heap while training
                self._train()
            if self._external_stop.is_set():
                self.log.event("stop", self.step, reason="signal", save=bool(self._stop_requested))
            self.final_state = "stopped" if self._stop_requested is not None else "finished"
            if self._stop_requested is not False:
                self.save_checkpoint("last")
            self.log.set_state(state=self.final_state, step=self.step, best_val_loss=self.best_val_loss)
            self._set_state(self.final_state, f"{self.final_state} at step {self.step}")
        except BaseException as e:  # noqa: BLE001 - report everything, re-raise nothing into the thread
            tb = traceback.format_exc()
            self.error = f"{type(e).__name__}: {e}"
            self.final_state = "failed"
            self._alert("error", f"the run failed at step {self.step}: {self.error}", tb)
            self.log.set_state(state="failed", step=self.step, error=self.error)
            self._set_state("failed", self.error)
        finally:
            self._cleanup()
        return self.final_state

    def _cleanup(self) -> None:
        if hasattr(self, "sampler"):
            self.sampler.stop()
        if hasattr(self, "log"):
            self.log.flush()
            self.log.close()
        self.val_loader = None  # lets persistent workers exit

    def _train_loader(self) -> DataLoader:
        cfg = self.cfg
        sampler = EpochSampler(len(self.bundle.train), cfg.run.seed, self.epoch,
                               start=self.batch_in_epoch * cfg.data.batch_size)
        g = torch.Generator()
        g.manual_seed(cfg.run.seed * 7919 + self.epoch)  # worker seeds do not touch the global RNG
        return DataLoader(self.bundle.train, batch_size=cfg.data.batch_size, sampler=sampler,
                          num_workers=cfg.data.num_workers, pin_memory=self.device.type == "cuda",
                          drop_last=True, generator=g)

    def _train(self) -> None:
        cfg = self.cfg
        accum = cfg.train.grad_accum
        self._reset_buffers()
        self._t_start = time.monotonic()
        self._t_flush = self._t_start
        self._steps_at_flush = self.step
        self._start_step = self.step
        while self.step < self.total_steps and self.epoch < cfg.train.epochs:
            loader = self._train_loader()
            micro = 0
            loss_acc = None
            for x, y in loader:
                if self.batch_in_epoch >= self.steps_per_epoch * accum:
                    break  # leftover micro-batches that cannot fill an optimizer step
                if micro == 0:
                    self._boundary()
                    if self._stop_requested is not None:
                        return
                try:
                    loss = self._forward_backward(x, y, accum)
                except torch.OutOfMemoryError as e:
                    micro, loss_acc = 0, None
                    self._on_oom(e, micro_done=self.batch_in_epoch % accum)
                    if self._stop_requested is not None:
                        return
                    break  # the loader restarts from the start of the step that failed
                d = loss.detach()
                if d.dtype != torch.float32:
                    d = d.float()
                loss_acc = d if loss_acc is None else loss_acc + d
                micro += 1
                self.batch_in_epoch += 1
                if micro == accum:
                    self._optimizer_step(loss_acc)
                    micro, loss_acc = 0, None
                    if self.step >= self.total_steps:
                        break
                    self._after_step()
            if self.step >= self.total_steps and self.batch_in_epoch < self.steps_per_epoch * accum:
                break  # max_steps reached mid-epoch
            if self.batch_in_epoch < self.steps_per_epoch * accum:
                continue  # left the epoch early (out of memory): re-enter it where the step began
            self._epoch_end()
        self._flush()
        if self.val_loader is not None and self._last_eval_step != self.step:
            self.evaluate()

    def _forward_backward(self, x: torch.Tensor, y: torch.Tensor, accum: int) -> torch.Tensor:
        if self._move_batches:
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
        with self.placement.autocast():
            logits = self.model(x)
            loss = F.cross_entropy(logits, y)
            if accum > 1:  # scaled before backward: accumulation averages (a /1 costs a kernel and a grad node)
                loss = loss / accum
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()
        return loss

    def _on_oom(self, err: BaseException, micro_done: int) -> None:
        """Out of memory mid-step: drop the partial step, keep the last good state, pause or stop."""
        self.optimizer.zero_grad(set_to_none=True)
        self.batch_in_epoch -= micro_done  # redo this step's micro-batches after a resume
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        bs = self.cfg.data.batch_size
        self._alert("oom", f"out of memory at step {self.step + 1} (batch {bs}): {str(err).splitlines()[0][:200]}",
                    f"Try a smaller batch with the same effective size: data.batch_size={max(1, bs // 2)} "
                    f"train.grad_accum={self.cfg.train.grad_accum * 2}, or run.precision=bf16/fp16.")
        self.save_checkpoint("fault")
        if self.interactive:
            self.paused = True
            self._set_state("paused", "out of memory: restart with a smaller batch (c) or quit")
        else:
            self._stop_requested = False  # already saved above

    def _optimizer_step(self, loss: torch.Tensor) -> None:
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.grad_clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip, foreach=None)
        else:
            norm = _total_norm(self.params)
        if self.cfg.monitor.nan_policy == "skip":
            # skip needs the verdict before the update: one host sync per step, by the user's choice
            if not bool(torch.isfinite(loss) & torch.isfinite(norm)):
                self.optimizer.zero_grad(set_to_none=True)
                self._alert("nonfinite", f"step {self.step + 1} skipped: non-finite loss ({float(loss):.4g}) "
                                         f"or grad norm ({float(norm):.4g}); nan_policy=skip")
                self.log.event("skip", self.step + 1)
                return
        lrs = self.schedule.current  # the LRs this step uses (host floats, no sync)
        skipped = False
        if self.scaler is not None:
            before = self.scaler.get_scale()
            self.scaler.step(self.optimizer)  # syncs by itself to check for inf/NaN
            self.scaler.update()
            skipped = self.scaler.get_scale() < before  # the scale only drops when a step was skipped
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        if skipped:
            self.amp_skipped += 1  # the weights did not move: neither does the schedule
            self._amp_skipped_steps.add(self.step)
        else:
            self.schedule.on_step()
        self._buf_loss.append(loss)
        # clip_grad_norm_ / get_total_norm run without grad: no detach needed; fp32 for the stack
        self._buf_norm.append(norm if norm.dtype == torch.float32 else norm.float())
        self._buf_steps.append(self.step)
        self._buf_lrs.append(lrs)
        self._buf_epoch.append(self.epoch)

    def _after_step(self) -> None:
        now = time.monotonic()
        if len(self._buf_steps) >= self.log_every or now - self._t_flush >= FLUSH_SECONDS:
            self._flush(now)
        if self.eval_every and self.step % self.eval_every == 0:
            self.evaluate()
        if self.checkpoint_every and self.step % self.checkpoint_every == 0:
            self.save_checkpoint("periodic")

    def _epoch_end(self) -> None:
        self.epoch += 1
        self.batch_in_epoch = 0
        self.schedule.on_epoch_end()
        self._flush()
        if not self.eval_every:
            self.evaluate()
        if not self.checkpoint_every and self.step < self.total_steps:
            self.save_checkpoint("periodic")

    # ------------------------------------------------------------------ metrics
    def _reset_buffers(self) -> None:
        self._buf_loss: list[torch.Tensor] = []
        self._buf_norm: list[torch.Tensor] = []
        self._buf_steps: list[int] = []
        self._buf_lrs: list[list[float]] = []
        self._buf_epoch: list[int] = []
        self._amp_skipped_steps: set[int] = set()  # fp16 overflow steps the GradScaler skipped
        self._spikes = SpikeWatch()
        self._last_eval_step = -1

    def _flush(self, now: float | None = None) -> None:
        """Move the buffered per-step values to the host in one transfer and report them."""
        if not self._buf_steps:
            return
        now = time.monotonic() if now is None else now
        # The one host sync per flush: both series in a single transfer.
        both = torch.stack(self._buf_loss + self._buf_norm)
        if both.device.type != "cpu":
            both = both.cpu()
        both = both.tolist()
        losses, norms = both[:len(self._buf_loss)], both[len(self._buf_loss):]
        steps, lrs, epochs = self._buf_steps, self._buf_lrs, self._buf_epoch
        self._buf_loss, self._buf_norm, self._buf_steps, self._buf_lrs, self._buf_epoch = [], [], [], [], []
        dt = max(now - self._t_flush, 1e-9)
        steps_per_s = (steps[-1] - self._steps_at_flush) / dt
        self._t_flush, self._steps_at_flush = now, steps[-1]
        elapsed = now - self._t_start
        done = steps[-1] - self._start_step
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total_steps - steps[-1]) / rate if rate > 0 else None
        amp = self._amp_skipped_steps
        self.log.train_steps(steps, epochs, losses, lrs, norms, amp)
        clipped = sum(1 for n in norms if self.grad_clip is not None and n > self.grad_clip)
        batch = self.cfg.data.batch_size * self.cfg.train.grad_accum
        self.emit(ev.Metrics(
            steps=steps, loss=losses, grad_norm=norms, lr=[lr[0] for lr in lrs], epoch=epochs[-1],
            lrs=lrs[-1], clipped=clipped, phase=self.schedule.phase, steps_per_s=steps_per_s,
            samples_per_s=steps_per_s * batch, elapsed=elapsed, eta=eta, total_steps=self.total_steps,
            memory=self.sampler.memory(), amp_skipped=self.amp_skipped))
        self._check_values(steps, losses, norms)
        self._amp_skipped_steps = {s for s in amp if s > steps[-1]}

    def _check_values(self, steps: list[int], losses: list[float], norms: list[float]) -> None:
        for s, l_, n in zip(steps, losses, norms):
            if s in self._amp_skipped_steps and math.isfinite(l_):
                continue  # an fp16 overflow: the GradScaler skipped it and lowered its scale, as designed
            if not (math.isfinite(l_) and math.isfinite(n)):
                bad = "loss" if not math.isfinite(l_) else "grad norm"
                value = l_ if bad == "loss" else n
                self._alert("nonfinite", f"non-finite {bad} ({value}) at step {s}",
                            f"nan_policy={self.cfg.monitor.nan_policy}")
                self._nonfinite = True
                return
            spike = self._spikes.check(s, l_, self.cfg.monitor.spike_factor)
            if spike is not None:
                self._alert("spike", spike)

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self) -> tuple[float, float] | None:
        if self.val_loader is None:
            return None
        self._flush()
        prev = self.state
        self._set_state("evaluating")
        was_training = self.model.training
        self.model.eval()
        total = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        count = 0
        for x, y in self.val_loader:
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
            with self.placement.autocast():
                logits = self.model(x)
            total += F.cross_entropy(logits.float(), y, reduction="sum")
            correct += (logits.argmax(1) == y).sum()
            count += y.numel()
        self.model.train(was_training)
        val_loss, n_correct = torch.stack([total, correct.to(total.dtype)]).cpu().tolist()
        val_loss /= max(count, 1)
        val_acc = n_correct / max(count, 1)
        is_best = val_loss < self.best_val_loss
        if is_best:
            self.best_val_loss = val_loss
        self._last_eval_step = self.step
        self.log.metric({"step": self.step, "epoch": self.epoch, "val_loss": val_loss, "val_acc": val_acc})
        self.log.flush()
        self.emit(ev.EvalDone(self.step, self.epoch, val_loss, val_acc, self.best_val_loss, is_best))
        self.schedule.on_eval(val_loss)
        self.log.set_state(step=self.step, best_val_loss=self.best_val_loss)
        self._set_state(prev if prev != "evaluating" else "running")
        if is_best and self.step > 0:
            self.save_checkpoint("best")
        return val_loss, val_acc

    # ------------------------------------------------------------------ commands
    def _boundary(self) -> None:
        """Between optimizer steps: apply commands; stay here while paused."""
        if self._nonfinite:
            self._nonfinite = False
            self._on_nonfinite()
        if self._external_stop.is_set() and self._stop_requested is not None:
            return
        while True:
            cmd = self.channel.poll_command()
            while cmd is not None:
                self._apply(cmd)
                cmd = self.channel.poll_command()
            if not self.paused or self._stop_requested is not None:
                return
            cmd = self.channel.poll_command(timeout=0.1)
            if cmd is not None:
                self._apply(cmd)

    def _on_nonfinite(self) -> None:
        policy = self.cfg.monitor.nan_policy
        if policy == "stop":
            self._stop_requested = False
            self.log.event("stop", self.step, reason="nonfinite")
        elif policy == "pause" and not self.interactive:
            self._stop_requested = False  # the weights are bad: keep the last good checkpoint, write none
            self.log.event("stop", self.step, reason="nonfinite (headless: pause means stop)")
        elif policy == "pause":
            self.paused = True
            self._set_state("paused", "non-finite values: lower the LR or load a checkpoint, then resume")
            self.log.event("pause", self.step, reason="nonfinite")


def config_for_resume(run_dir: str | os.PathLike, overrides: list[str] | None = None) -> Config:
    """The config a run was made with (its config.yaml), with overrides applied."""
    from ..config.files import apply_overrides, parse_overrides, parse_yaml
    p = Path(run_dir) / "config.yaml"
    if not Path(run_dir).is_dir():
        raise UserError(f"resume: {run_dir} is not a run directory. Give one under runs/, "
                        "e.g. danlu run --resume runs/default-20260101-120000")
    if not p.is_file():
        raise UserError(f"resume: {run_dir} has no config.yaml, so it is not a danlu run directory.")
    raw = parse_yaml(p.read_text(), str(p)) or {}
    notes = apply_overrides(raw, parse_overrides(overrides or []))
    cfg = from_dict(raw, source=str(p))
    cfg.notes = notes
    return cfg


def start_in_thread(cfg: Config, channel: Channel, *, resume: str | None = None,
                    warm_start: str | os.PathLike | None = None) -> threading.Thread:
    """Run a Trainer in a daemon-free thread; the thread's `trainer` attribute is the Trainer."""
    trainer = Trainer(cfg, channel, resume=resume, warm_start=warm_start)

    def target() -> None:
        try:
            trainer.run()
        except UserError:
            pass  # already reported as an Alert and a failed status

    t = threading.Thread(target=target, name="danlu-engine")
    t.trainer = trainer  # type: ignore[attr-defined]
    t.start()
    return t
