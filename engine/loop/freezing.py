"""Freezes and unfreezes during a run: model.unfreeze's schedule at epoch ends, and the live
freeze/unfreeze commands; each one announced (ParamsChanged, events.jsonl) and the trainer's list
of trainable parameters (what clipping and the grad norm read) brought up to date."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..build.freeze import Changed
from ..control import events as ev

if TYPE_CHECKING:
    from .trainer import Trainer


def change(t: Trainer, op: str, match: str, lr_mult: float = 1.0, source: str = "command") -> Changed:
    """Freeze or unfreeze now (a step boundary); ValueError with the reason when nothing can change."""
    st = t.state
    step = t.progress.step
    if op == "freeze":
        done = st.transfer.freeze(st.optimizer, match, step)
    else:
        done = st.transfer.unfreeze(st.optimizer, st.schedule, match, lr_mult, step)
    t.params = [p for p in st.model.parameters() if p.requires_grad]
    trainable, total = st.transfer.trainable()
    groups = [g.get("name", str(i)) for i, g in enumerate(st.optimizer.param_groups)]
    detail = done.describe() + f"; trainable {trainable:,} of {total:,}"
    t.emit(ev.ParamsChanged(step, op, match, done.tensors, done.params, trainable, total, groups, detail, source))
    t.log.event("params_changed", step, op=op, match=match, tensors=done.tensors, params=done.params,
                trainable=trainable, total=total, groups=groups, source=source,
                **({"lr_mult": lr_mult} if op == "unfreeze" else {}))
    return done


def scheduled(t: Trainer) -> None:
    """model.unfreeze entries whose epoch has just ended (t.progress.epoch epochs done)."""
    for i, u in enumerate(t.cfg.model.unfreeze or []):
        if int(u["at_epoch"]) != t.progress.epoch:
            continue
        try:
            change(t, "unfreeze", u["match"], float(u.get("lr_mult", 1.0)), source=f"model.unfreeze[{i}]")
        except ValueError as e:
            t._warn(f"model.unfreeze[{i}] at epoch {u['at_epoch']}: {e}")
            continue
