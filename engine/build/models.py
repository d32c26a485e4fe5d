"""Build the model a config names: a built-in, a torchvision classifier, or the user's own."""

from __future__ import annotations

import copy
import difflib
import inspect
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..config.knobs import BUILTIN_MODEL_ARGS
from ..config.schema import INITS
from ..errors import UserError
from .imports import resolve_target


def _conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    # No conv bias: the BatchNorm right after it has one. BatchNorm momentum 0.5, not torch's 0.1:
    # early in a run at lr ~3e-3 the weights move fast, and running stats that lag ten steps
    # gave 55% val accuracy where batch stats gave 95% (shapes, step 150); 0.5 gave 90%. The
    # stats of one batch are already precise here (thousands of values per channel).
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out, momentum=0.5),
                         nn.ReLU(inplace=True))


class SmallCNN(nn.Sequential):
    """Three conv stages, global average pooling and a linear head; any image size >= 8."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 32, dropout: float = 0.1):
        w = int(width)
        super().__init__()
        self.features = nn.Sequential(
            _conv_bn_relu(in_channels, w),
            nn.MaxPool2d(2),
            _conv_bn_relu(w, 2 * w),
            nn.MaxPool2d(2),
            _conv_bn_relu(2 * w, 4 * w),
            _conv_bn_relu(4 * w, 4 * w),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Dropout(float(dropout)), nn.Linear(4 * w, num_classes))


class MLP(nn.Sequential):
    """Flatten, then Linear-ReLU-Dropout layers and a linear head."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, hidden: list[int] | tuple[int, ...] = (256, 256),
                 dropout: float = 0.1):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.ReLU(inplace=True), nn.Dropout(float(dropout))]
            width = int(h)
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)


def build_model(cfg: Any, num_classes: int, input_shape: tuple[int, ...], *, init: bool = True) -> nn.Module:
    """Build the model `cfg` (the model section) names for this data.

    `num_classes` is the number of outputs the loss needs. With `init`, the init `cfg` asks for
    is applied (see `resolve_init`); the trainer passes False and applies it itself once lazy
    layers have their shapes (engine/build/fit.py).
    """
    name = cfg.name
    args = dict(getattr(cfg, "args", None) or {})
    requested = getattr(cfg, "init", "default") or "default"
    if requested not in INITS:
        raise UserError(f"model.init: unknown init {requested!r}. Use one of {', '.join(INITS)}.")
    if args.get("weights") and requested in ("kaiming", "xavier"):
        raise UserError(f"model.init: {requested} would overwrite the pretrained weights model.args.weights asks "
                        "for; use model.init=default (or auto)")
    if name in BUILTIN_MODEL_ARGS:
        model = _builtin(name, args, num_classes, tuple(input_shape))
    elif ":" in name:
        model = _user_model(name, args, num_classes, tuple(input_shape))
    else:
        model = _torchvision(name, args, num_classes, tuple(input_shape))
    if init:
        init_weights(model, resolve_init(requested, name))
    return model


def resolve_init(init: str, name: str) -> str:
    """The init a model gets: `auto` means kaiming for the built-ins and the model's own for the rest.

    torchvision's builders and the user's code set their weights on purpose (pretrained or frozen
    layers, zero-initialised residual branches), so only an explicit kaiming or xavier touches them.
    """
    if init == "auto":
        return "kaiming" if name in BUILTIN_MODEL_ARGS else "default"
    return init


def _builtin(name: str, args: dict, num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    allowed = BUILTIN_MODEL_ARGS[name]
    unknown = [k for k in args if k not in allowed]
    if unknown:
        raise UserError(f"model.args: {name} does not take {', '.join(unknown)} "
                        f"(it takes {', '.join(allowed)}). Remove them from model.args.")
    kw = {**copy.deepcopy(allowed), **args}
    if name == "small_cnn":
        if len(input_shape) != 3 or min(input_shape[1:]) < 8:
            raise UserError(f"model.name: small_cnn needs images of at least 8x8 pixels shaped (C, H, W), "
                            f"the data gives {input_shape}. Use model.name=mlp for other inputs.")
        return SmallCNN(input_shape[0], num_classes, **kw)
    return MLP(input_shape, num_classes, **kw)


def _torchvision_names() -> list[str]:
    import torchvision

    return list(torchvision.models.list_models(module=torchvision.models))


_AUX_HEADS = ("inception_v3", "googlenet")  # torchvision classifiers with auxiliary logits (aux_logits=)


def _torchvision(name: str, args: dict, num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    import torchvision

    known = _torchvision_names()
    if name.lower() not in known:
        close = difflib.get_close_matches(name.lower(), list(BUILTIN_MODEL_ARGS) + known, n=3, cutoff=0.6)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        raise UserError(f"model.name: unknown model {name!r}.{hint} Use small_cnn, mlp, a torchvision "
                        "classifier (resnet18, mobilenet_v3_small, ...) or package.module:callable.")
    channels = input_shape[0] if input_shape else 3
    if channels not in (1, 3):
        raise UserError(f"model.name: {name} takes 3-channel images, the data has {channels} channels. "
                        "Use small_cnn or mlp, or your own model via package.module:callable.")
    args = dict(args)
    weights = args.pop("weights", None)
    if name.lower() in _AUX_HEADS:
        # training uses the main logits only (build/fit.py main_output), so aux heads would be weight
        # and time for nothing, and inception_v3's fails on images under ~300 px in train mode
        args = {"aux_logits": False, **args}
    try:
        if weights:
            from .pretrained import build as pretrained
            model, note = pretrained(name, weights, num_classes, args)
            model.pretrained_note = note  # read by fit.py for the run log
        else:
            model = torchvision.models.get_model(name.lower(), weights=None, num_classes=num_classes, **args)
    except TypeError as e:
        raise UserError(f"model.args: {name} rejected {sorted(args)}: {e}. "
                        "Make model.args match the torchvision builder's arguments.") from None
    if channels == 1:
        # A hook rather than a wrapper module keeps the parameter names torchvision's own,
        # so param_groups regexes (e.g. '^fc\.') and checkpoints match the plain model.
        model.register_forward_pre_hook(_gray_to_rgb)
    return model


def _gray_to_rgb(module: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook: repeat a single channel three times for models built for RGB."""
    x = args[0]
    if x.dim() == 4 and x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return (x, *args[1:])


def _user_model(spec: str, args: dict, num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    fn = resolve_target(spec, "model.name")
    kw = dict(args)
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # some builtins and C extensions have no signature
        params = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if "num_classes" in params or takes_any:
        kw.setdefault("num_classes", num_classes)
    if "input_shape" in params:
        kw.setdefault("input_shape", input_shape)
    try:
        model = fn(**kw)
    except TypeError as e:
        if "argument" in str(e):
            raise UserError(f"model.args: {spec} rejected the arguments {sorted(kw)}: {e}. "
                            "Make model.args match its parameters.") from None
        raise
    if not isinstance(model, nn.Module):
        raise UserError(f"model.name: {spec} returned a {type(model).__name__}, not a torch.nn.Module. "
                        "Return the model itself.")
    return model


@dataclass
class InitReport:
    """What an init touched: module names, and the frozen ones it left as they were."""

    init: str
    touched: list[str] = field(default_factory=list)
    frozen: list[str] = field(default_factory=list)

    def describe(self) -> str:
        text = f"model.init {self.init}: re-initialised {len(self.touched)} layer(s)"
        text += f" ({short_list(self.touched)})" if self.touched else ""
        if self.frozen:
            text += (f"; left {len(self.frozen)} frozen layer(s) (requires_grad=False) as they were: "
                     f"{short_list(self.frozen)}")
        return text


def short_list(names: list[str], head: int = 3, tail: int = 2) -> str:
    """a, b, c, ... (12 more), y, z: long lists of layer names cut to their ends."""
    names = [n or "(the model itself)" for n in names]
    if len(names) <= head + tail + 1:
        return ", ".join(names)
    return ", ".join(names[:head]) + f", ... ({len(names) - head - tail} more), " + ", ".join(names[-tail:])


NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def init_weights(model: nn.Module, init: str) -> InitReport:
    """Re-initialise conv and linear weights (kaiming or xavier), zero their biases, reset norms.

    Only trainable parameters are touched: a layer whose parameters are frozen (requires_grad=False,
    e.g. a pretrained backbone) keeps its weights. Returns what was touched.
    """
    report = InitReport(init)
    if init == "default":
        return report
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, nn.modules.conv._ConvNd):
                kind = "conv"
            elif isinstance(m, nn.Linear):
                kind = "linear"
            elif isinstance(m, NORMS):
                kind = "norm"
            else:
                continue
            weight, bias = getattr(m, "weight", None), getattr(m, "bias", None)
            params = [p for p in (weight, bias) if isinstance(p, nn.Parameter)]
            live = [p for p in params if p.requires_grad]
            if not live:
                if params:
                    report.frozen.append(name)
                continue
            report.touched.append(name)
            if weight is not None and weight.requires_grad:
                if kind == "norm":
                    nn.init.ones_(weight)
                elif init == "kaiming" and kind == "conv":
                    # fan_out keeps the gradient scale through ReLU stacks (the torchvision ResNet choice).
                    nn.init.kaiming_normal_(weight, mode="fan_out", nonlinearity="relu")
                elif init == "kaiming":
                    nn.init.kaiming_uniform_(weight, nonlinearity="relu")
                else:
                    nn.init.xavier_uniform_(weight)
            if bias is not None and bias.requires_grad:
                nn.init.zeros_(bias)
    return report


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (shared ones counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
