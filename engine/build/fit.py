"""Fit the model to its data and loss before the first step, on a probe batch.

The first few training items go through the model once, in eval mode and without gradients.
That one pass gives lazy layers (nn.LazyLinear, nn.LazyConv2d, ...) their shapes before the
init, the optimizer and the parameter count look at them; decides how inputs of other dtypes
reach the model; and checks the output against the targets and the loss, so a mismatch is a
message before the run starts, not a traceback at the first step or the first evaluation.

The rules, in words, are engine/config/losses.py (INPUT_RULE, OUTPUT_RULE, ...) and
docs/config.md, "What the model gets and gives"; targets are cast by engine/build/loss.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin

from ..config.losses import OUTPUT_RULE
from ..errors import UserError
from .data import DataBundle, dataset_size, sample_batch
from .device import Placement
from .freeze import check_unfreeze, freeze_at_start
from .loss import Loss, build_loss
from .models import BUILTIN_MODEL_ARGS, build_model, count_parameters, init_weights, resolve_init, short_list

PROBE_ITEMS = 8  # items in the probe batch (fewer if the batch size is smaller)


def main_output(out: Any) -> torch.Tensor:
    """The tensor the loss and the metrics use, from whatever the model returned (OUTPUT_RULE)."""
    if isinstance(out, torch.Tensor):
        return out
    logits = getattr(out, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(out, Mapping):
        for key in ("logits", "out"):
            if isinstance(out.get(key), torch.Tensor):
                return out[key]
    elif isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    what = type(out).__name__
    if isinstance(out, Mapping):
        what += f" with keys {', '.join(map(str, out))}"
    raise UserError(f"model output: the model returned a {what}, and danlu cannot tell which part is the "
                    f"prediction. The rule: {OUTPUT_RULE} Return one of those (e.g. {{'logits': x, ...}}).")


def _floating_dtype(model: nn.Module) -> torch.dtype:
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point() and not isinstance(t, nn.parameter.UninitializedParameter):
            return t.dtype
    return torch.float32


@dataclass
class Fit:
    """The model, its loss, and how each batch's inputs reach it."""

    model: nn.Module
    loss: Loss
    input_dtype: torch.dtype          # floating inputs are cast to this
    cast_ints: bool = False           # integer inputs become input_dtype (uint8 also / 255)
    notes: list[str] = field(default_factory=list)  # for the run's log
    # where the starting weights came from (init, pretrained, weights_path): told only for a new run,
    # since a resume or warm start replaces them with the checkpoint's
    weight_notes: list[str] = field(default_factory=list)

    def inputs(self, x: Any) -> Any:
        """A batch's inputs as the model takes them (on their device; no sync)."""
        if not isinstance(x, torch.Tensor):
            return x
        if x.is_floating_point():
            return x if x.dtype == self.input_dtype else x.to(self.input_dtype)
        if not self.cast_ints:
            return x
        y = x.to(self.input_dtype)
        return y.div_(255) if x.dtype == torch.uint8 else y

    output = staticmethod(main_output)

    def probe(self, x: torch.Tensor, placement: Placement) -> torch.Tensor:
        """One forward pass on the probe inputs: lazy layers get their shapes, integer inputs their rule."""
        model = self.model
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad(), placement.autocast():
                if isinstance(x, torch.Tensor) and not x.is_floating_point():
                    try:
                        raw = model(x)
                    except Exception as first:  # noqa: BLE001 - any refusal: try the inputs as numbers
                        self.cast_ints = True
                        raw = self._forward(x)
                        scale = ", scaled by 1/255 as ToTensor does" if x.dtype == torch.uint8 else ""
                        self.notes.append(f"inputs are {_dtype(x)} and the model does not take them as they are "
                                          f"({_first_line(first)}): cast to {_dtype(self.input_dtype)}{scale}")
                else:
                    raw = self._forward(x)
                    if isinstance(x, torch.Tensor) and x.dtype != self.input_dtype:
                        self.notes.append(f"inputs are {_dtype(x)}: cast to the model's {_dtype(self.input_dtype)}")
        finally:
            model.train(was_training)
        lazy = [name for name, m in model.named_modules()
                if isinstance(m, LazyModuleMixin) and m.has_uninitialized_params()]
        if lazy:
            raise UserError(f"model: lazy layers {short_list(lazy)} still have no shape after a forward pass in "
                            "eval mode. Make forward() use them in eval mode too, or give them their sizes "
                            "(nn.Linear instead of nn.LazyLinear).")
        return main_output(raw)

    def _forward(self, x: Any) -> Any:
        x = self.inputs(x)
        try:
            return self.model(x)
        except Exception as e:
            if hasattr(e, "add_note"):
                shape = f"{_dtype(x)} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
                e.add_note(f"danlu: raised by the model on the first training items (inputs {shape}), "
                           "before training started")
            raise


def fit_model(cfg: Any, bundle: DataBundle, placement: Placement) -> Fit:
    """Build the model for this data and loss, probe it, apply its init; the model ends on the device."""
    loss = build_loss(cfg.train)
    batch = sample_batch(bundle.train, min(PROBE_ITEMS, cfg.data.batch_size))
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
        raise UserError(f"data: items of {cfg.data.name} must be (input, target) pairs; a batch of them is a "
                        f"{type(batch).__name__}{f' of {len(batch)}' if isinstance(batch, (tuple, list)) else ''}.")
    x, y = batch
    if not isinstance(y, torch.Tensor):
        raise UserError(f"data: the targets of {cfg.data.name} collate to a {type(y).__name__}, not a tensor. "
                        "Return numbers or tensors as targets.")
    torch.manual_seed(cfg.run.seed)  # model init does not depend on how the data was built
    out_features = loss.out_features(bundle.num_classes, y, cfg.data.name)
    input_shape = tuple(bundle.input_shape) if bundle.input_shape else tuple(x.shape[1:])
    model = build_model(cfg.model, out_features, input_shape, init=False).to(placement.device)
    fit = Fit(model, loss, _floating_dtype(model))
    x, y = _to(x, placement.device), y.to(placement.device)
    try:
        out = fit.probe(x, placement)
    except (RuntimeError, ValueError) as e:
        if ":" in cfg.model.name or isinstance(e, torch.OutOfMemoryError):
            raise  # the user's own model: the traceback points into their code
        shape = f"{_dtype(x)} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise UserError(f"model.name: {cfg.model.name} cannot take this data's inputs ({shape}): "
                        f"{str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}. "
                        "Images too small for the network, or the wrong number of channels? Raise the image "
                        "size (data.args.image_size; torchvision's ImageNet models expect 224, inception_v3 at "
                        "least 75) or pick a model made for these inputs.") from None
    fit.notes += loss.check(out, y, bundle.num_classes)
    loss(out.float() if out.dtype in (torch.float16, torch.bfloat16) else out, y)  # the training path
    loss.eval_sums(out, y)                                                         # and evaluation's

    init = resolve_init(cfg.model.init or "default", cfg.model.name)
    report = init_weights(model, init)
    if report.touched or report.frozen:
        fit.weight_notes.append(report.describe())
    if init == "default" and cfg.model.init == "auto" and cfg.model.name not in BUILTIN_MODEL_ARGS:
        fit.weight_notes.append(f"model.init auto: {cfg.model.name} keeps the weights it was built with "
                         "(model.init=kaiming or xavier re-initialises it)")
    if getattr(model, "pretrained_note", None):
        fit.weight_notes.append(model.pretrained_note)
    if getattr(cfg.model, "weights_path", None):
        from .pretrained import load_weights_path
        fit.weight_notes += load_weights_path(model, cfg.model.weights_path)
    frozen = freeze_at_start(model, list(cfg.model.freeze or []))
    if frozen is not None:
        fit.notes.append(f"model.freeze: {frozen.describe()}; trainable {count_parameters(model, True):,} of "
                         f"{count_parameters(model):,} parameters")
    check_unfreeze(model, list(cfg.model.unfreeze or []))
    if bundle.stream and dataset_size(bundle.train) is None:
        unset = [k for k in ("eval_every", "checkpoint_every") if getattr(cfg.train, k) is None]
        if unset:
            fit.notes.append(f"train.{' and train.'.join(unset)} empty: a stream without a length is one epoch, "
                             f"so that happens only at the end of the run. Set {' and '.join(unset)} to a "
                             "number of steps to keep work along the way.")
    return fit


def _to(x: Any, device: torch.device) -> Any:
    return x.to(device) if isinstance(x, torch.Tensor) else x


def _dtype(x: Any) -> str:
    return str(x.dtype if isinstance(x, torch.Tensor) else x).replace("torch.", "")


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0][:120] if text else type(e).__name__)
