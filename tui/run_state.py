"""Everything the dashboard shows, folded from engine events. Torch- and Textual-free.

The EventPump feeds events in; widgets read plain attributes out. Holding the
model here (not in widgets) keeps each widget a pure view and lets tests check
the fold without a terminal.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from danlu.engine.config import hot
from danlu.engine.control import events as ev
from danlu.engine.control.channel import join_metrics

from .series import Series, all_finite

EMA_WEIGHT = 0.9  # smoothing of the train-loss line (TensorBoard-style, bias-corrected)
# Pending steps folded into the series even if no chart reads them (a dialog covers the charts).
FOLD_AT = 8192


@dataclass
class RunState:
    """The latest known value of everything on screen; `version` bumps on each change."""

    run: ev.RunStarted | None = None
    state: str = ev.State.STARTING
    detail: str = ""
    nonfinite_pause: str | None = None  # nan_policy pause stopped on NaN/inf: where and what (the quit dialog says it)
    step: int = 0
    epoch: int = 0
    total_steps: int | None = None
    steps_per_s: float | None = None
    samples_per_s: float | None = None
    elapsed: float | None = None
    eta: float | None = None
    phase: str = ""
    lrs: list[float] = field(default_factory=list)
    grad_clip: float | None = None
    clipped: int = 0            # clipped steps since the start of this UI
    amp_skipped: int = 0        # fp16 steps the GradScaler skipped (run total, from the engine)
    seen_steps: int = 0
    recent_clipped: float | None = None  # fraction in the last Metrics batch
    memory: dict[str, Any] = field(default_factory=dict)
    last_loss: float | None = None
    last_grad: float | None = None
    layer_norms: dict[str, float] = field(default_factory=dict)  # per-layer grad norms, latest sampled step
    layer_norms_step: int | None = None
    val: ev.EvalDone | None = None
    best_val_loss: float | None = None
    best_val_acc: float | None = None
    last_checkpoint: ev.CheckpointSaved | None = None
    lr_find: ev.LrFindDone | None = None  # the latest mid-run LR range test
    lr_find_answers: dict = field(default_factory=dict)  # command id -> its CommandApplied/Rejected (the dialog reads it)
    hparams: dict[str, Any] = field(default_factory=dict)  # every applied set_hparam, name -> new
    val_points: deque = field(default_factory=lambda: deque(maxlen=2000))  # (step, val_loss)
    markers: deque = field(default_factory=lambda: deque(maxlen=500))      # (step, kind)
    trainable_params: int | None = None
    total_params: int | None = None
    group_names: list[str] | None = None   # after an unfreeze added groups (RunStarted has the first ones)
    version: int = 0
    # The charts' series, behind properties that fold the pending Metrics batches first.
    _loss: Series = field(default_factory=Series, repr=False)
    _ema_series: Series = field(default_factory=Series, repr=False)
    _grad: Series = field(default_factory=Series, repr=False)
    _grad_ema: Series = field(default_factory=Series, repr=False)
    _lr: Series = field(default_factory=Series, repr=False)
    _nonfinite: int = 0
    _pending: list = field(default_factory=list, repr=False)  # Metrics batches not yet in the series
    _pending_steps: int = 0
    _ema: float = 0.0
    _ema_n: int = 0
    _gema: float = 0.0
    _gema_n: int = 0

    # Each read of a chart's series folds what is pending, so readers never see a stale one.
    @property
    def loss(self) -> Series:
        return self._folded()._loss

    @property
    def ema(self) -> Series:
        return self._folded()._ema_series

    @property
    def grad(self) -> Series:
        return self._folded()._grad

    @property
    def grad_ema(self) -> Series:
        """Drawn over the grad band: noisy norms fill it."""
        return self._folded()._grad_ema

    @property
    def lr(self) -> Series:
        return self._folded()._lr

    @property
    def nonfinite(self) -> int:
        """Non-finite train losses seen."""
        return self._folded()._nonfinite

    @property
    def final(self) -> bool:
        return self.state in ev.FINAL_STATES

    @property
    def empty_text(self) -> str:
        """What a chart with no points says: waiting, or why nothing will come."""
        return f"no data: the run {self.state}" if self.final else "waiting for data…"

    def top_layers(self, k: int = 5) -> list[tuple[str, float]]:
        """The k layers with the largest grad norm at the latest sampled step (non-finite first)."""
        def key(item):
            v = item[1]
            return math.inf if v is None or not math.isfinite(v) else v
        return sorted(self.layer_norms.items(), key=key, reverse=True)[:k]

    @property
    def overfit_batches(self) -> int:
        """train.overfit_batches of the run (0: a normal run)."""
        train = (self.run.config.get("train") or {}) if self.run else {}
        return int(train.get("overfit_batches") or 0)

    @property
    def groups(self) -> list[str]:
        if self.group_names is not None:
            return list(self.group_names)
        if self.run and self.run.groups:
            return list(self.run.groups)
        return [f"group {i}" for i in range(len(self.lrs))]

    def apply(self, e: Any, commands: dict[int, ev.Command] | None = None) -> None:
        """Fold one event in. `commands` maps ids to sent commands, to interpret answers."""
        handler = getattr(self, "_on_" + type(e).__name__, None)
        if handler is not None:
            handler(e, commands or {})
            self.version += 1

    def _on_RunStarted(self, e: ev.RunStarted, _):
        self.run = e
        self.total_steps = e.total_steps
        self.step = e.start_step
        self.grad_clip = e.grad_clip
        self.total_params = e.num_params
        self.trainable_params = e.num_params if e.trainable_params is None else e.trainable_params

    def _on_ParamsChanged(self, e: ev.ParamsChanged, _):
        self.markers.append((e.step, "freeze"))
        self.trainable_params, self.total_params = e.trainable, e.total
        self.group_names = list(e.groups)

    def _on_Metrics(self, e: ev.Metrics, _):
        # Only the latest values now; the steps wait for the next read of a series (a chart
        # frame, seconds apart), so they are folded in a few large batches rather than many
        # small ones, on the UI thread that shares the GIL with the training loop.
        if e.steps:
            self._pending.append(e)
            self._pending_steps += len(e.steps)
            if self._pending_steps >= FOLD_AT:  # nothing is drawing (a dialog is up): keep it bounded
                self._fold()
        self.step, self.epoch = e.step, e.epoch
        self.last_loss = e.loss[-1] if e.loss else self.last_loss
        self.last_grad = e.grad_norm[-1] if e.grad_norm else self.last_grad
        self.clipped += e.clipped
        self.seen_steps += len(e.steps)
        self.recent_clipped = e.clipped / len(e.steps) if e.steps else None
        self.take_now(e)

    def take_now(self, e: ev.Metrics) -> None:
        """What a Metrics batch says about now (LRs, rates, ETA, memory), not its points: an attached
        dashboard gets the newest batch in the run's hello, after its points came from the files."""
        self.lrs = list(e.lrs)
        self.phase = e.phase
        self.steps_per_s, self.samples_per_s = e.steps_per_s, e.samples_per_s
        self.elapsed, self.eta, self.total_steps = e.elapsed, e.eta, e.total_steps
        self.amp_skipped = getattr(e, "amp_skipped", 0)
        self.memory = dict(e.memory or {})
        if getattr(e, "layer_norms", None):
            self.layer_norms, self.layer_norms_step = dict(e.layer_norms), e.layer_norms_step

    def _folded(self) -> "RunState":
        if self._pending:
            self._fold()
        return self

    def _fold(self) -> None:
        """Every pending step into the series: one Series.extend each and two EMA loops."""
        e = join_metrics(self._pending)
        self._pending, self._pending_steps = [], 0
        self._extend(e.steps, e.loss, e.grad_norm, e.lr)

    def _extend(self, all_steps, loss, grad_norm, lr) -> None:
        self._loss.extend(all_steps, loss)
        steps, smooth, self._ema, self._ema_n = _ema(all_steps, loss, self._ema, self._ema_n)
        self._nonfinite += len(all_steps) - len(steps)
        self._ema_series.extend(steps, smooth)
        self._grad.extend(all_steps, grad_norm)
        steps, smooth, self._gema, self._gema_n = _ema(all_steps, grad_norm, self._gema, self._gema_n)
        self._grad_ema.extend(steps, smooth)
        self._lr.extend(all_steps, lr)

    def load_history(self, h: Any, events: list[Any], commands: dict[int, ev.Command]) -> None:
        """The run's past from its files (tui/history.py), folded before any live Metrics:
        the same series, so the same bounds, as if the dashboard had watched from step 1."""
        self._folded()
        lrs = list(self.lrs)
        for e in events:
            if not isinstance(e, ev.StatusChanged):  # the live run says its state itself
                self.apply(e, commands)
        self.lrs = lrs  # an old LR change's value is not the LR now
        if h.steps:
            self._extend(h.steps, h.loss, h.grad_norm, h.lr)
            self.step = max(self.step, h.steps[-1])
            self.epoch = self.epoch or h.epoch
            self.last_loss = self._loss.last if self.last_loss is None else self.last_loss
            self.last_grad = self._grad.last if self.last_grad is None else self.last_grad
            self.lrs = self.lrs or list(h.lrs)
            self.seen_steps += len(h.steps)
        if h.layer_norms and not self.layer_norms:
            self.layer_norms, self.layer_norms_step = dict(h.layer_norms), h.layer_norms_step
        self.version += 1

    def _on_EvalDone(self, e: ev.EvalDone, _):
        self.val = e
        self.val_points.append((e.step, e.val_loss))
        self.best_val_loss = e.best_val_loss
        if e.val_acc is not None and math.isfinite(e.val_acc):
            self.best_val_acc = max(self.best_val_acc or e.val_acc, e.val_acc)

    def _on_LrFindDone(self, e: ev.LrFindDone, _):
        self.lr_find = e

    def _on_StatusChanged(self, e: ev.StatusChanged, _):
        self.state, self.detail = e.state, e.detail
        self.step = max(self.step, e.step)

    def _on_CommandRejected(self, e: ev.CommandRejected, _):
        if e.kind == ev.CommandKind.LR_FIND:
            self.lr_find_answers[e.command_id] = e

    def _on_CommandApplied(self, e: ev.CommandApplied, commands):
        cmd = commands.get(e.command_id)
        if e.kind == ev.CommandKind.LR_FIND:
            self.lr_find_answers[e.command_id] = e
        if e.kind in (ev.CommandKind.SET_LR, ev.CommandKind.PAUSE):
            self.markers.append((e.step, e.kind))
            if e.kind == ev.CommandKind.SET_LR and isinstance(e.new, list) and len(e.new) == len(self.lrs):
                self.lrs = list(e.new)  # shown at once, even while paused (no Metrics then)
        elif e.kind == ev.CommandKind.SET_HPARAM:
            self.markers.append((e.step, "hparam"))
            name = cmd.args.get("name") if cmd is not None else None
            if name == "grad_clip":
                self.grad_clip = e.new if isinstance(e.new, (int, float)) else None
            if name is not None:
                self.hparams[name] = e.new  # the engine's answer: per param group for optimizer settings
                self._couple_beta1(name, e.new)

    def _couple_beta1(self, name: str, new: Any) -> None:
        """Adam-style optimizers have no momentum: setting it sets beta1, and betas move beta1 too."""
        optim = (self.run.config.get("optim") or {}) if self.run else {}
        if "betas" not in optim or "momentum" in optim or not isinstance(new, list):
            return
        if name == "momentum":
            betas = self.hparams.get("betas")
            if not (isinstance(betas, list) and len(betas) == len(new)):
                betas = [list(optim["betas"])] * len(new)
            self.hparams["betas"] = [[m, b[1]] for m, b in zip(new, betas)]
        elif name == "betas" and "momentum" in self.hparams:
            self.hparams["momentum"] = [b[0] for b in new]

    def current_hparams(self) -> dict[str, str]:
        """What the hparam dialog shows as "now": the config the run started with, then every applied
        change, as a person reads it (one value when every param group has it, else group by group)."""
        cfg = self.run.config if self.run else {}
        shown = {name: _shown(v) for name in hot.HPARAMS for v in [hot.config_value(cfg, name)] if v is not None}
        for name, v in self.hparams.items():
            per_group = name in hot.HOT and hot.HOT[name].per_group
            shown[name] = _by_group(v, self.groups) if per_group else _shown(v)
        if self.run:
            shown["grad_clip"] = _shown(self.grad_clip)
        return shown

    def _on_CheckpointSaved(self, e: ev.CheckpointSaved, _):
        self.last_checkpoint = e
        self.markers.append((e.step, "checkpoint"))

    def _on_Alert(self, e: ev.Alert, _):
        self.markers.append((e.step, "alert"))
        if e.kind == ev.AlertKind.NONFINITE and e.details == "nan_policy=pause":
            self.nonfinite_pause = f"step {e.step}: {e.message}"  # the weights may hold NaN/inf from here on


def _shown(v: Any) -> str:
    """One value as typed in the dialog: 0.1, or 0.9, 0.999 for a pair; off for no value."""
    if v is None:
        return "off"
    if isinstance(v, (list, tuple)):
        return ", ".join(_shown(x) for x in v)
    return f"{v:g}" if isinstance(v, float) else str(v)


def _by_group(values: Any, groups: list[str]) -> str:
    """The engine's answer for a per-group setting: one value if every group has it, else each group's."""
    if not isinstance(values, list) or not values or len(values) != len(groups):
        return _shown(values)
    if all(v == values[0] for v in values):
        return _shown(values[0])
    return "; ".join(f"{g}: {_shown(v)}" for g, v in zip(groups, values))


def _ema(steps, values, ema: float, n: int) -> tuple[list[int], list[float], float, int]:
    """Bias-corrected EMA over the finite values: (their steps, smoothed values, new ema, new n)."""
    w = EMA_WEIGHT
    if n >= _EMA_SETTLED and all_finite(values):
        # The usual batch, on the UI thread for every step of the run: past _EMA_SETTLED points
        # the correction 1 - w**n is exactly 1.0, so skipping it changes no value.
        out = []
        append, c = out.append, 1 - w
        for v in values:
            ema = w * ema + c * v
            append(ema)
        return list(steps), out, ema, n + len(out)
    out_steps, out = [], []
    isfinite = math.isfinite
    for s, v in zip(steps, values):
        if v is not None and isfinite(v):
            n += 1
            ema = w * ema + (1 - w) * v
            out_steps.append(s)
            out.append(ema / (1 - w ** n))
    return out_steps, out, ema, n


# From this many points on, the EMA's bias correction (1 - w**n) is 1.0 in floating point.
_EMA_SETTLED = next(n for n in range(1, 100_000) if 1 - EMA_WEIGHT ** n == 1.0)
