"""Pretrained weights: torchvision's (model.args.weights) and a local state_dict (model.weights_path).

torchvision weights come from the torch hub cache (torch.hub.get_dir()/checkpoints); a missing file is
downloaded with a socket timeout, so an offline machine gets a message naming the cache in seconds
instead of a hang. The classifier head is replaced for num_classes, and the weights' own
normalisation (weights.transforms()) is what image_folder data is normalised with.
"""

from __future__ import annotations

import difflib
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from ..errors import UserError

# Seconds a connection may stay silent while fetching weights: a blocked network fails in about this.
DOWNLOAD_TIMEOUT_S = 10.0


def _enum(name: str) -> Any:
    import torchvision
    try:
        return torchvision.models.get_model_weights(name.lower())
    except (ValueError, KeyError):
        raise UserError(f"model.args.weights: {name} has no pretrained weights in torchvision; "
                        "remove model.args.weights, or use model.weights_path=FILE") from None


def resolve(name: str, spec: Any) -> Any:
    """The weights enum member `spec` names for model `name`: DEFAULT, IMAGENET1K_V1, or Enum.MEMBER."""
    cls = _enum(name)
    text = str(spec).strip()
    member = text.split(".", 1)[1] if "." in text else text
    if "." in text and text.split(".", 1)[0] != cls.__name__:
        raise UserError(f"model.args.weights: {text!r} is not {name}'s; its weights are {cls.__name__}.* "
                        f"({', '.join(['DEFAULT', *cls.__members__])})")
    try:
        return cls[member]
    except KeyError:
        names = ["DEFAULT", *cls.__members__]
        close = difflib.get_close_matches(member, names, n=1)
        hint = f" Did you mean {close[0]}?" if close else ""
        raise UserError(f"model.args.weights: {text!r} is not one of {name}'s weights ({', '.join(names)}).{hint}") \
            from None


def normalization(model_cfg: Any) -> tuple[tuple[float, ...], tuple[float, ...], str] | None:
    """(mean, std, which weights) of the pretrained weights the model section asks for; None without.
    Reads the weights' metadata only: nothing is downloaded."""
    spec = (getattr(model_cfg, "args", None) or {}).get("weights")
    if not spec or ":" in model_cfg.name:
        return None
    w = resolve(model_cfg.name, spec)
    t = w.transforms()
    mean, std = getattr(t, "mean", None), getattr(t, "std", None)
    if mean is None or std is None:
        return None
    return tuple(mean), tuple(std), f"{type(w).__name__}.{w.name}"


def cache_file(w: Any) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(w.url).path)


def state_dict(name: str, w: Any) -> dict[str, torch.Tensor]:
    """The weights' state_dict: from the hub cache, or downloaded into it with a timeout."""
    path = cache_file(w)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # urllib opens its connections without one
        try:
            torch.hub.download_url_to_file(w.url, str(path) + ".part", progress=False)
            os.replace(str(path) + ".part", path)
        except (OSError, ValueError) as e:  # URLError, timeouts and refused connections are OSErrors
            try:
                os.remove(str(path) + ".part")
            except OSError:
                pass
            reason = getattr(e, "reason", None) or e
            raise UserError(
                f"model.args.weights: could not download {type(w).__name__}.{w.name} ({reason}). danlu looks for "
                f"it in the torch hub cache, {path.parent} (torch.hub.get_dir(), set by $TORCH_HOME). Offline, "
                f"copy {path.name} there from a machine with network (it fetches it with: python -c \"import "
                f"torchvision; torchvision.models.get_model('{name.lower()}', weights='DEFAULT')\"), or point "
                "model.weights_path at a state_dict file and leave model.args.weights out.") from None
        finally:
            socket.setdefaulttimeout(old)
    return _load(path, "model.args.weights")


def _load(path: Path, key: str) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - unpickling errors come in many types
        raise UserError(f"{key}: {path} does not load as a state_dict with weights_only=True "
                        f"({type(e).__name__}: {str(e).splitlines()[0][:160]}). Save one with "
                        "torch.save(model.state_dict(), path).") from None
    if isinstance(obj, dict):
        for inner in ("model", "state_dict", "model_state_dict"):  # a training checkpoint wrapping it
            if isinstance(obj.get(inner), dict):
                obj = obj[inner]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"{key}: {path} holds a {type(obj).__name__}, not a state_dict of tensors. Save one with "
                        "torch.save(model.state_dict(), path).")
    return obj


def _head(model: nn.Module) -> tuple[str, nn.Module] | None:
    """The classifier: the last Linear (or 1x1 Conv, as in SqueezeNet) in the model."""
    last = None
    for n, m in model.named_modules():
        if isinstance(m, nn.Linear) or (isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)):
            last = (n, m)
    return last


def _set(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, new)


def build(name: str, spec: Any, num_classes: int, args: dict[str, Any]) -> tuple[nn.Module, str]:
    """A torchvision model with pretrained weights, its head replaced for num_classes; and a note."""
    import torchvision
    w = resolve(name, spec)
    if name.lower() in ("googlenet", "inception_v3"):
        args = {"transform_input": True, **args}  # what torchvision's own builder sets for these weights
    model = torchvision.models.get_model(name.lower(), weights=None, **args)
    sd = state_dict(name, w)
    if not getattr(model, "aux_logits", True):  # built without aux heads (models.py): their weights unused
        sd = {k: v for k, v in sd.items() if not k.startswith(("aux1.", "aux2.", "AuxLogits."))}
    model.load_state_dict(sd)
    classes = len(w.meta.get("categories") or [])
    note = f"model.args.weights: {name} with {type(w).__name__}.{w.name}"
    if num_classes == classes:
        return model, note + f" (its {classes}-class head kept)"
    head = _head(model)
    if head is None:
        raise UserError(f"model.args.weights: found no Linear classifier in {name} to replace for {num_classes} "
                        "classes; use your own model (model.name=module:callable)")
    hname, old = head
    if isinstance(old, nn.Linear):
        new: nn.Module = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    else:
        new = nn.Conv2d(old.in_channels, num_classes, 1)
    _set(model, hname, new)
    return model, note + f"; head {hname} replaced: {classes} -> {num_classes} outputs (newly initialised)"


def load_weights_path(model: nn.Module, path: str) -> list[str]:
    """model.weights_path: load a local state_dict; what did not fit is named. Returns notes for the log."""
    p = Path(os.path.expanduser(str(path)))
    if not p.is_file():
        raise UserError(f"model.weights_path: {p} is not a file. Point it at a state_dict saved with "
                        "torch.save(model.state_dict(), path).")
    sd = _load(p, "model.weights_path")
    own = model.state_dict()
    if sd and not any(k in own for k in sd) and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}  # saved from DataParallel/DDP
    skipped = [k for k, v in sd.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    fitting = {k: v for k, v in sd.items() if k in own and k not in skipped}
    if not fitting:
        raise UserError(f"model.weights_path: none of the {len(sd)} tensors in {p} fit this model "
                        f"(its keys look like {', '.join(list(sd)[:3])}; the model's like "
                        f"{', '.join(list(own)[:3])}). Is it the state_dict of another architecture?")
    missing = [k for k in own if k not in fitting]
    unexpected = [k for k in sd if k not in own]
    model.load_state_dict(fitting, strict=False)
    text = f"model.weights_path: loaded {len(fitting)} of {len(own)} tensors from {p}"
    if skipped:
        text += "; skipped (shape differs, e.g. a head for another num_classes): " + ", ".join(
            f"{k} {list(sd[k].shape)} vs {list(own[k].shape)}" for k in skipped[:6])
    if missing and [k for k in missing if k not in skipped]:
        rest = [k for k in missing if k not in skipped]
        text += f"; missing (kept as built): {_short(rest)}"
    if unexpected:
        text += f"; unexpected (ignored): {_short(unexpected)}"
    return [text]


def _short(keys: list[str], n: int = 6) -> str:
    return ", ".join(keys[:n]) + (f", ... ({len(keys) - n} more)" if len(keys) > n else "")
