"""The loss a run trains on and what evaluation reports, from `train.loss`.

The built-in losses, the targets each expects and what val_acc means for each are one table,
engine/config/losses.py; here each gets its torch function. Targets are cast per batch to
what the loss needs (class indices to int64, numbers to float) from their dtype and shape
alone, so the cast never waits on the device. `check` looks at one probe batch before the
run starts and turns a mismatch into a message that names the fix.
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ..config.losses import LOSSES, REGRESSION_HINT, is_user_loss
from ..errors import UserError
from .imports import resolve_target


def _shape(t: torch.Tensor) -> str:
    return str(tuple(t.shape))


class Loss:
    """One loss: the mean over a batch for training, sums for evaluation, checks on a probe batch."""

    def __init__(self, name: str, args: dict[str, Any]):
        self.name = name
        self.spec = LOSSES.get(name)
        self.args = dict(args or {})
        self.classification = self.spec is not None and self.spec.classification
        self.has_accuracy = self.spec is not None and self.spec.accuracy is not None
        self._pos_weight: torch.Tensor | None = None
        if self.spec is None:
            self._fn = _user_loss(name, self.args)
        else:
            fn = getattr(F, self.spec.function)
            kw = {k: v for k, v in self.args.items() if v is not None}
            if "pos_weight" in kw:  # a tensor on the outputs' device, moved there once
                self._pos_weight = torch.tensor(float(kw.pop("pos_weight")))
            self._fn = functools.partial(fn, **kw) if kw else fn

    # -- targets -------------------------------------------------------------------------
    def soft(self, out: torch.Tensor, y: torch.Tensor) -> bool:
        """cross_entropy with a target row per item (one-hot or probabilities), not class indices."""
        return y.dim() == out.dim() and y.dim() >= 2 and not _index_column(out, y)

    def prepare(self, out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Output and targets as the loss takes them; decided from dtypes and shapes only (no sync)."""
        if self.spec is None:
            # the user's loss takes the targets as the data gives them, but two traps are closed:
            # (N, 1) against (N,) would broadcast to (N, N), and float64 targets against float32 outputs
            if out.dim() == 2 and out.shape[1] == 1 and y.dim() == 1:
                out = out.squeeze(1)
            if y.is_floating_point() and out.is_floating_point() and y.dtype != out.dtype:
                y = y.to(torch.float64 if out.dtype == torch.float64 else torch.float32)
            return out, y
        if self.classification:
            if _index_column(out, y):
                y = y.squeeze(1)  # a column of class indices, (N, 1)
            if not self.soft(out, y):
                return out, y if y.dtype == torch.int64 else y.long()
        elif out.shape != y.shape:
            if out.numel() != y.numel():
                raise UserError(self._shape_problem(out, y))
            out = out.reshape(y.shape)  # (N, 1) against (N,): mse would broadcast to (N, N) and be wrong
        want = torch.float64 if out.dtype == torch.float64 else torch.float32  # autocast computes these in fp32
        return out, y if y.dtype == want else y.to(want)

    def _shape_problem(self, out: torch.Tensor, y: torch.Tensor) -> str:
        return (f"train.loss: {self.name} needs one model output per target value; the model gives "
                f"{_shape(out)} for a batch whose targets are {_shape(y)}. Make the model return the "
                "targets' shape (the built-in and torchvision models size their output from the targets), "
                "or, for class labels, use train.loss=cross_entropy.")

    # -- training and evaluation ---------------------------------------------------------------
    def __call__(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The batch's mean loss."""
        out, y = self.prepare(out, y)
        if self._pos_weight is not None:
            if self._pos_weight.device != out.device:
                self._pos_weight = self._pos_weight.to(out.device)
            return self._fn(out, y, pos_weight=self._pos_weight)
        return self._fn(out, y)

    def eval_sums(self, out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, int, int]:
        """(loss x items, correct predictions or None, items, predictions counted), all on the device."""
        if out.is_floating_point() and out.dtype in (torch.float16, torch.bfloat16):
            out = out.float()
        n = int(y.shape[0]) if y.dim() else 1
        loss = self(out, y).float() * n
        if not self.has_accuracy:
            return loss, None, n, 0
        out, y = self.prepare(out, y)
        if self.classification:
            target = y.argmax(1) if self.soft(out, y) else y
            correct = (out.argmax(1) == target).sum()
            return loss, correct, n, target.numel()
        correct = ((out > 0) == (y > 0.5)).sum()
        return loss, correct, n, y.numel()

    # -- the probe batch -----------------------------------------------------------------------
    def out_features(self, num_classes: int | None, y: torch.Tensor, what: str) -> int:
        """How many outputs the built models give: one per class for cross_entropy, else one per target value."""
        if self.classification:
            if num_classes:
                return int(num_classes)
            if y.dim() == 2 and y.shape[1] > 1:
                return int(y.shape[1])  # one-hot or probability rows tell the number of classes
            msg = (f"data.name: cannot tell how many classes {what} has, which {self.name} needs. Give its "
                   "dataset a `classes` list or a `num_classes` attribute, or return "
                   "dict(train=..., val=..., num_classes=N).")
            if y.is_floating_point() and not _whole(y):
                msg += (f" Its targets are fractional numbers ({_example(y)}): numbers to predict? "
                        f"Set {REGRESSION_HINT}.")
            else:
                msg += f" Numbers to predict rather than classes? Set {REGRESSION_HINT}."
            raise UserError(msg)
        if num_classes and self.spec is None:
            return int(num_classes)
        return max(1, math.prod(y.shape[1:]))

    def check(self, out: torch.Tensor, y: torch.Tensor, num_classes: int | None) -> list[str]:
        """Problems of this loss with the probe batch raise a UserError; returns notes for the log."""
        notes: list[str] = []
        if self.spec is None:
            value = self(out, y)
            if not isinstance(value, torch.Tensor) or value.dim() != 0:
                got = _shape(value) if isinstance(value, torch.Tensor) else type(value).__name__
                raise UserError(f"train.loss: {self.name} returned {got}, not a single number (a 0-d tensor). "
                                "Reduce it, e.g. return loss.mean().")
            return notes
        if self.classification:
            if out.dim() < 2:
                raise UserError(f"train.loss: cross_entropy needs one logit per class, shaped (N, num_classes); the "
                                f"model gives {_shape(out)}. For a single yes/no output use "
                                "train.loss=bce_with_logits.")
            if _index_column(out, y):
                y = y.squeeze(1)
                notes.append("targets are a column of class indices, shape (N, 1): used as (N,)")
            if y.dim() not in (out.dim(), out.dim() - 1):
                raise UserError(f"train.loss: cross_entropy takes one class index per item (targets (N,)) or a "
                                f"row of class probabilities (N, C); the targets are {_shape(y)} for outputs "
                                f"{_shape(out)}.")
            if self.soft(out, y):
                if y.shape != out.shape:
                    raise UserError(f"train.loss: cross_entropy got target rows {_shape(y)} for outputs "
                                    f"{_shape(out)}: each row needs one value per class.")
                notes.append("targets are class-probability rows (one-hot or soft): cross_entropy uses them as "
                             "they are, val_acc compares the argmax of the output with the argmax of the target")
                return notes
            if y.is_floating_point():
                if not _whole(y):
                    raise UserError(f"train.loss: cross_entropy needs class indices, and the targets are fractional "
                                    f"numbers ({_example(y)}). Numbers to predict? Set {REGRESSION_HINT}. "
                                    "Classes? Make the dataset return whole-number labels.")
                notes.append(f"targets are class indices stored as {str(y.dtype).replace('torch.', '')}: "
                             "cast to int64 for cross_entropy")
            elif y.dtype == torch.bool:
                notes.append("targets are booleans: used as class indices 0 and 1")
            c = out.shape[1] if out.dim() >= 2 else 1
            lo, hi = int(y.min()), int(y.max())
            if lo < 0 or hi >= c:
                raise UserError(f"data: a label is {hi if hi >= c else lo}, and the model gives {c} class logits "
                                f"(labels must be 0 to {c - 1}). Give the dataset the right `classes`/`num_classes`, "
                                "or fix its labels.")
            return notes
        if out.numel() != y.numel():
            raise UserError(self._shape_problem(out, y))
        if self.name == "bce_with_logits" and (float(y.min()) < 0 or float(y.max()) > 1):
            raise UserError(f"train.loss: bce_with_logits needs targets between 0 and 1, got {_example(y)}. "
                            "For class indices use train.loss=cross_entropy; for numbers to predict, "
                            f"{REGRESSION_HINT}.")
        return notes


class EvalSums:
    """The running sums of an evaluation, on the device; `result` moves them in one transfer."""

    def __init__(self, loss: Loss, device: torch.device):
        self.loss = loss
        self.total = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.long)
        self.items = 0
        self.counted = 0

    def add(self, out: torch.Tensor, y: torch.Tensor) -> None:
        loss, correct, n, counted = self.loss.eval_sums(out, y)
        self.total += loss
        if correct is not None:
            self.correct += correct
        self.items += n
        self.counted += counted

    def result(self) -> tuple[float, float | None]:
        """(val_loss, val_acc); val_acc is None where this loss has no accuracy."""
        total, correct = torch.stack([self.total, self.correct.to(self.total.dtype)]).cpu().tolist()
        val_loss = total / max(self.items, 1)
        val_acc = correct / max(self.counted, 1) if self.loss.has_accuracy else None
        return val_loss, val_acc


def build_loss(cfg: Any) -> Loss:
    """The loss `cfg` (the train section) names."""
    return Loss(getattr(cfg, "loss", "cross_entropy") or "cross_entropy", getattr(cfg, "loss_args", None) or {})


def _user_loss(spec: str, args: dict[str, Any]) -> Callable[..., torch.Tensor]:
    if not is_user_loss(spec):
        raise UserError(f"train.loss: unknown loss {spec!r}; use one of {', '.join(LOSSES)} or package.module:callable.")
    fn = resolve_target(spec, "train.loss")
    if inspect.isclass(fn):  # torch.nn:HuberLoss, or the user's nn.Module: built with loss_args, then called
        try:
            return fn(**args)
        except TypeError as e:
            raise UserError(f"train.loss_args: {spec} rejected {sorted(args)}: {e}. "
                            "Make train.loss_args match its parameters.") from None
    if not args:
        return fn
    try:
        inspect.signature(fn).bind(None, None, **args)
    except TypeError as e:
        raise UserError(f"train.loss_args: {spec} cannot take {sorted(args)} ({e}). It is called as "
                        "fn(output, target, **loss_args).") from None
    except ValueError:
        pass  # no signature to check against
    return functools.partial(fn, **args)


def _index_column(out: torch.Tensor, y: torch.Tensor) -> bool:
    """Targets shaped (N, 1) against logits (N, C>1): one class index per row, not a probability row."""
    return out.dim() == 2 and y.dim() == 2 and y.shape[1] == 1 and out.shape[1] > 1


def _whole(y: torch.Tensor) -> bool:
    return bool(torch.all(y == torch.round(y)))


def _example(y: torch.Tensor) -> str:
    vals = y.flatten()[:3].tolist()
    return ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in vals) + (" ..." if y.numel() > 3 else "")
