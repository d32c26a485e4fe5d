"""No host-device sync on the training path between flushes (docs/architecture.md).

CUDA only: `torch.cuda.set_sync_debug_mode("error")` turns every synchronizing call
(`.item()`, `float(t)`, `.cpu()`, `.tolist()`, a blocking copy, `nonzero`, ...) into a
RuntimeError. The loop runs in that mode from its first step; the places that are
allowed to sync (the flush every `log_every` steps, evaluation, checkpoints) drop to
mode 0 while they run and restore the mode after. Any other sync fails the run, which
Trainer.run reports as a failed final state with the error.
"""

from __future__ import annotations

import functools

import pytest
import torch

from danlu.engine.control import events as ev
from danlu.engine.loop.trainer import Trainer

from .helpers import ScriptedChannel

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="the sync audit needs a CUDA device")


def _allowed_to_sync(fn):
    """Wrap a Trainer method so it runs with sync debugging off, then restores the mode."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        prev = torch.cuda.get_sync_debug_mode()
        torch.cuda.set_sync_debug_mode(0)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.cuda.set_sync_debug_mode(prev)
    return wrapper


class AuditedTrainer(Trainer):
    """Counts the flushes; every step outside them runs under sync_debug_mode("error")."""

    flushes = 0

    def _train(self) -> None:
        torch.cuda.set_sync_debug_mode("error")
        try:
            super()._train()
        finally:
            torch.cuda.set_sync_debug_mode(0)

    @_allowed_to_sync
    def flush(self):
        if len(self.metrics):
            self.flushes += 1
        return super().flush()

    evaluate = _allowed_to_sync(Trainer.evaluate)
    save_checkpoint = _allowed_to_sync(Trainer.save_checkpoint)


def test_the_audit_catches_a_sync():
    """The mode this test relies on does raise on this build (else the audit proves nothing)."""
    t = torch.ones(1, device="cuda")
    torch.cuda.set_sync_debug_mode("error")
    try:
        with pytest.raises(RuntimeError):
            t.item()
    finally:
        torch.cuda.set_sync_debug_mode(0)


@pytest.mark.parametrize("precision,grad_accum,grad_clip,layer_norms_every", [
    ("auto", 1, 1.0, 0),   # bf16 autocast where the card has it: the default path
    ("fp32", 2, None, 0),  # accumulation, and the total norm computed without clipping
    ("auto", 1, 1.0, 3),   # per-layer grad norms on sampled steps, moved with the flush
])
def test_no_sync_between_flushes(tiny_config, precision, grad_accum, grad_clip, layer_norms_every):
    cfg = tiny_config({
        "run": {"device": "cuda", "precision": precision, "deterministic": False},
        "train": {"epochs": 2, "grad_accum": grad_accum, "grad_clip": grad_clip,
                  "eval_every": 5, "checkpoint_every": 7},
        "monitor": {"log_every": 4, "nan_policy": "pause", "layer_norms_every": layer_norms_every},
    })
    if precision == "auto" and not torch.cuda.is_bf16_supported():
        pytest.skip("fp16 + GradScaler syncs in scaler.step by design; this card has no bf16")
    # Commands between steps must not sync either: a host-side LR change and a hot hparam.
    ch = ScriptedChannel({3: [ev.set_lr(value=1e-3)], 6: [ev.set_hparam("log_every", 3)]})
    trainer = AuditedTrainer(cfg, ch)
    ch.trainer = trainer
    state = trainer.run()
    assert state == "finished", f"a sync on the training path: {trainer.error}"
    assert trainer.step == trainer.total_steps
    assert trainer.flushes >= trainer.total_steps // 4 - 1  # the flushes did run (and were allowed to sync)
    metrics = [e for e in ch.seen if isinstance(e, ev.Metrics)]
    assert sum(len(m.steps) for m in metrics) == trainer.total_steps  # every step still reported
    assert any(isinstance(e, ev.CommandApplied) and e.kind == "set_lr" for e in ch.seen)
