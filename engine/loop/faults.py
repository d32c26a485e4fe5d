"""What a run does when training goes wrong: NaN/inf (monitor.nan_policy), out of memory, a crash.

Each fault ends the same few ways: an alert (one events.jsonl line), then a pause where a person
is watching, or a stop with the reason (exit code 3); the last good state kept in a checkpoint
where the weights are still finite. The Trainer calls these at the points the fault is seen:
a flush's non-finite value at the next step boundary, nan_policy skip's verdict before each update,
out of memory mid-step, an exception out of the loop (the crash checkpoint).
"""

from __future__ import annotations

import math
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..control import events as ev
from ..control.events import AlertKind, CheckpointReason, State
from ..errors import UserError
from ..store import trainer_state
from .progress import Stop, StopReason

if TYPE_CHECKING:
    from .trainer import Trainer


def fault_stop(t: Trainer, reason: StopReason, message: str) -> None:
    """The run cannot go on: stop at the next boundary, write no more, say why (exit code 3)."""
    t.fault = t.fault or message
    t.request_stop(Stop(reason, save=False))
    t.log.event("stop", t.progress.step, reason=str(reason), message=message)


# ------------------------------------------------------------------ NaN/inf seen by a flush
def on_nonfinite(t: Trainer, bad: str) -> None:
    """A flush saw NaN/inf (`bad` says where): at the step boundary, nan_policy says what happens."""
    policy, step = t.cfg.monitor.nan_policy, t.progress.step
    t._bad_values = bad
    if policy == "stop":
        # the weights are bad: keep the last good checkpoint, write none
        fault_stop(t, StopReason.NONFINITE, f"{bad} (nan_policy=stop)")
    elif policy == "pause" and not t.interactive:
        fault_stop(t, StopReason.NONFINITE, f"{bad} (nan_policy=pause, and headless nobody can resume: stopped)")
    elif policy == "pause":
        t.paused = True
        t.metrics.pause()
        t.set_state(State.PAUSED, "non-finite values: lower the LR or load a checkpoint, then resume")
        t.log.event("pause", step, reason="nonfinite")


def at_run_end(t: Trainer) -> None:
    """The loop is over (its last flush done): a streak of skipped steps told, NaN/inf seen after the
    last boundary made a fault (the run cannot end well)."""
    end_skip_streak(t)
    if t._nonfinite is not None:
        bad, t._nonfinite = t._nonfinite, None
        t._bad_values = bad
        fault_stop(t, StopReason.NONFINITE, f"{bad} (nan_policy={t.cfg.monitor.nan_policy})")


def weights_fault(t: Trainer) -> None:
    """After the last checkpoint: weights holding NaN/inf (stopped by hand while paused on them)
    make the run's end a fault: nothing could be saved, nothing succeeded."""
    if t.fault is None and not trainer_state.weights_finite(t.state.model):
        t.fault = "the weights hold NaN/inf" + (f" ({t._bad_values})" if t._bad_values else "")


# ------------------------------------------------------------------ nan_policy skip
def skipped(t: Trainer, loss: torch.Tensor, norm: torch.Tensor) -> bool:
    """nan_policy skip, before the update: True when the loss or grad norm is not finite (the grads
    are dropped, the step counted into the streak); a finite step ends a streak."""
    # skip needs the verdict before the update: one host sync per step, by the user's choice
    if not bool(torch.isfinite(loss) & torch.isfinite(norm)):
        t.state.optimizer.zero_grad(set_to_none=True)
        skip_step(t, float(loss), float(norm))
        return True
    if t._skips.count:
        end_skip_streak(t)
    return False


def skip_step(t: Trainer, loss: float, norm: float) -> None:
    """One more step skipped: counted into the streak; too many in a row stop the run."""
    what = f"loss ({loss:.4g})" if not math.isfinite(loss) else f"grad norm ({norm:.4g}) with a finite loss"
    streak = t._skips
    streak.add(t.progress.step + 1, what)
    limit = t.cfg.monitor.max_skips
    if streak.count < limit:
        return
    summary = streak.summary()
    t._alert(AlertKind.NONFINITE, f"{summary}; stopping at monitor.max_skips={limit}",
             f"The weights are still those of step {t.progress.step}. Lower optim.lr, or look for "
             "broken samples in the data; a resume continues after the skipped batches.", **streak.fields())
    streak.reset()
    last, step = t.last_checkpoint, t.progress.step
    if step > 0 and (last is None or last.step != step):
        t.save_checkpoint(CheckpointReason.FAULT)  # the weights are finite: keep the work since the last one
    fault_stop(t, StopReason.NONFINITE, f"{summary} (nan_policy=skip, monitor.max_skips={limit})")


def end_skip_streak(t: Trainer) -> None:
    """A finite step after skipped ones (or the run's end): one line for the whole streak."""
    streak = t._skips
    if streak.count:
        t._alert(AlertKind.NONFINITE, f"{streak.summary()}; nan_policy=skip, training went on", "",
                 **streak.fields())
        streak.reset()


# ------------------------------------------------------------------ out of memory, crashes
def on_oom(t: Trainer, err: BaseException, micro_done: int) -> None:
    """Out of memory mid-step: drop the partial step, keep the last good state, pause or stop."""
    t.state.optimizer.zero_grad(set_to_none=True)
    t.progress.batch_in_epoch -= micro_done  # redo this step's micro-batches after a resume
    if t.device.type == "cuda":
        torch.cuda.empty_cache()
    bs = t.cfg.data.batch_size
    t._alert(AlertKind.OOM,
             f"out of memory at step {t.progress.step + 1} (batch {bs}): {str(err).splitlines()[0][:200]}",
             f"Try a smaller batch with the same effective size: data.batch_size={max(1, bs // 2)} "
             f"train.grad_accum={t.cfg.train.grad_accum * 2}, or run.precision=bf16/fp16.")
    t.save_checkpoint(CheckpointReason.FAULT)
    if t.interactive:
        t.paused = True
        t.metrics.pause()
        t.set_state(State.PAUSED, "out of memory: restart with a smaller batch (c) or quit")
    else:
        fault_stop(t, StopReason.OOM, f"out of memory at step {t.progress.step + 1} (batch {bs})")


def crash_checkpoint(t: Trainer) -> Path | None:
    """After an exception mid-run: keep the work since the last checkpoint, if the weights are sound.

    Named by the last completed optimizer step; the micro-batches of a step under way are
    given back (as after out of memory), so a resume redoes that step whole. Never raises.
    """
    if t.state is None or t.log is None or t.run_dir is None:
        return None
    try:
        p, begun = t.progress, t._step_start
        if begun is not None and begun[:2] == (p.step, p.epoch):
            p.batch_in_epoch = begun[2]
        if p.step == t._first_step:
            return None  # no optimizer step since the run began here: no work to keep
        last = t.last_checkpoint
        if last is not None and last.step == p.step and Path(last.path).is_file():
            return None  # it holds this step already: nothing to add
        return t.save_checkpoint(CheckpointReason.CRASH)
    except BaseException as e:  # noqa: BLE001 - the first failure is the one to report
        t._warn(f"crash checkpoint not written: {type(e).__name__}: {e}")
        return None


def failed_on_input(t: Trainer, e: UserError) -> None:
    """The user's data or code found wanting mid-run: the run failed, with the message (and where its
    crash checkpoint is), not a traceback. The caller re-raises `e`."""
    t.error = str(e)
    t.final_state = State.FAILED
    crash = crash_checkpoint(t)
    if crash is not None:
        e.args = (f"{e}\ncrash checkpoint saved: {crash} (step {t.progress.step}); after fixing "
                  f"the cause, resume with: danlu run --resume {t.run_dir}",)
    t.emit(ev.Alert(t.progress.step, AlertKind.BAD_INPUT, str(e)))
    t.log.set_state(state=State.FAILED, step=t.progress.step, error=t.error)
    t.set_state(State.FAILED, t.error)


def crashed(t: Trainer, e: BaseException) -> None:
    """Anything else raised mid-run (called while it is handled): the run failed, with the traceback
    and a crash checkpoint where there is work to keep."""
    tb = traceback.format_exc()
    t.error = f"{type(e).__name__}: {e}"
    t.final_state = State.FAILED
    crash = crash_checkpoint(t)
    note = ""
    if crash is not None:
        note = (f"; crash checkpoint saved: {crash}; after fixing the cause, resume with: "
                f"danlu run --resume {t.run_dir}")
    t._alert(AlertKind.ERROR, f"the run failed at step {t.progress.step}: {t.error}{note}", tb)
    if t.log is not None:
        t.log.set_state(state=State.FAILED, step=t.progress.step, error=t.error)
    t.set_state(State.FAILED, t.error)
