"""Build the train and validation datasets a config names."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import Dataset, Subset, random_split

from ..config.knobs import BUILTIN_DATA_ARGS
from ..config.plan import val_size
from ..errors import UserError
from .imports import resolve_target
from .shapes import ShapesDataset

# name -> (torchvision class, folder under root that holds its files, input shape, mean, std)
TORCHVISION_DATA: dict[str, tuple[str, str, tuple[int, int, int], tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ("MNIST", "MNIST/raw", (1, 28, 28), (0.1307,), (0.3081,)),
    "fashion_mnist": ("FashionMNIST", "FashionMNIST/raw", (1, 28, 28), (0.2860,), (0.3530,)),
    "cifar10": ("CIFAR10", "cifar-10-batches-py", (3, 32, 32),
                (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}

SHAPES_ARGS = BUILTIN_DATA_ARGS["shapes"]
IMAGE_FOLDER_ARGS = BUILTIN_DATA_ARGS["image_folder"]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class DataBundle:
    """The datasets of a run and what the model needs to know about them."""

    train: Dataset
    val: Dataset | None
    num_classes: int
    input_shape: tuple[int, ...]
    classes: list[str] = field(default_factory=list)


def build_datasets(cfg: Any, seed: int) -> DataBundle:
    """Build the datasets `cfg` (the data section) names; the val split is fixed by `seed`."""
    name = cfg.name
    args = dict(getattr(cfg, "args", None) or {})
    val_fraction = float(getattr(cfg, "val_fraction", 0.0) or 0.0)
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"data.val_fraction: must be in [0, 1), got {val_fraction}.")
    if name == "shapes":
        _check_args("shapes", args, SHAPES_ARGS)
        args.setdefault("seed", seed)
        full = ShapesDataset(**args)
        bundle = DataBundle(full, None, full.num_classes, (full.channels, full.image_size, full.image_size),
                            list(full.classes))
    elif name in TORCHVISION_DATA:
        bundle = _torchvision(name, cfg, args)
    elif name == "image_folder":
        bundle = _image_folder(cfg, args)
    elif ":" in name:
        bundle = _user_data(name, args)
    else:
        raise UserError(f"data.name: unknown dataset {name!r}. Use shapes, mnist, fashion_mnist, cifar10, "
                        "image_folder, or package.module:callable for your own.")
    if bundle.val is None and val_fraction > 0:
        bundle.train, bundle.val = split(bundle.train, val_fraction, seed)
    return bundle


def split(dataset: Dataset, val_fraction: float, seed: int) -> tuple[Dataset, Dataset | None]:
    """Split off a validation set; the same seed always picks the same items."""
    n = len(dataset)  # type: ignore[arg-type]
    n_val = val_size(n, val_fraction)
    if n_val == 0:
        return dataset, None
    train, val = random_split(dataset, [n - n_val, n_val], generator=torch.Generator().manual_seed(seed))
    return train, val


def _check_args(name: str, args: dict, allowed: tuple[str, ...]) -> None:
    unknown = [k for k in args if k not in allowed]
    if unknown:
        takes = ", ".join(allowed) if allowed else "no arguments"
        raise UserError(f"data.args: {name} does not take {', '.join(unknown)} (it takes {takes}). "
                        "Remove them from data.args.")


def _root(cfg: Any, name: str) -> str:
    root = getattr(cfg, "root", None)
    if not root:
        raise UserError(f"data.root: {name} needs a folder for its files. Set data.root=path/to/data.")
    return os.path.expanduser(str(root))


def _torchvision(name: str, cfg: Any, args: dict) -> DataBundle:
    from torchvision import datasets, transforms

    _check_args(name, args, ())
    cls_name, sub, shape, mean, std = TORCHVISION_DATA[name]
    root = _root(cfg, name)
    download = bool(getattr(cfg, "download", False))
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])
    try:
        ds = getattr(datasets, cls_name)(root, train=True, download=download, transform=tf)
    except RuntimeError as e:
        if download:
            raise UserError(f"data.download: could not fetch {cls_name} into {root} ({e}). "
                            f"Check the network, or copy the files into {os.path.join(root, sub)} "
                            "and set data.download=false.") from None
        raise UserError(f"data.root: {root} has no {cls_name} files (looked in {os.path.join(root, sub)}). "
                        "Set data.download=true to fetch them, or point data.root at a folder that has them.") from None
    return DataBundle(ds, None, len(ds.classes), shape, [str(c) for c in ds.classes])


def _image_folder(cfg: Any, args: dict) -> DataBundle:
    from torchvision import datasets, transforms

    _check_args("image_folder", args, IMAGE_FOLDER_ARGS)
    root = _root(cfg, "image_folder")
    if not os.path.isdir(root):
        raise UserError(f"data.root: {root} is not a folder. Point data.root at a folder with one "
                        "subfolder of images per class.")
    size = int(args.get("image_size", 64))
    tf = transforms.Compose([
        transforms.Resize(size),
        transforms.CenterCrop(size),  # Resize keeps the aspect ratio; the crop makes every item square
        transforms.ToTensor(),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])
    try:
        ds = datasets.ImageFolder(root, transform=tf)
    except (FileNotFoundError, RuntimeError) as e:
        raise UserError(f"data.root: {root} has no usable images ({e}). It needs one subfolder per class, "
                        "each holding images (.png, .jpg, ...).") from None
    return DataBundle(ds, None, len(ds.classes), (3, size, size), list(ds.classes))


def _user_data(spec: str, args: dict) -> DataBundle:
    fn = resolve_target(spec, "data.name")
    try:
        out = fn(**args)
    except TypeError as e:
        if "argument" in str(e):  # most likely data.args do not match the signature
            raise UserError(f"data.args: {spec} rejected the arguments {sorted(args)}: {e}. "
                            "Make data.args match its parameters.") from None
        raise
    num_classes, classes = None, None
    if isinstance(out, dict):
        if "train" not in out:
            raise UserError(f"data.name: {spec} returned a dict without 'train'. "
                            "Return a Dataset, a (train, val) tuple, or a dict with train, val, num_classes.")
        train, val = out["train"], out.get("val")
        num_classes, classes = out.get("num_classes"), out.get("classes")
    elif isinstance(out, (tuple, list)) and len(out) == 2:
        train, val = out
    elif isinstance(out, Dataset) or hasattr(out, "__getitem__"):
        train, val = out, None
    else:
        raise UserError(f"data.name: {spec} returned a {type(out).__name__}. "
                        "Return a Dataset, a (train, val) tuple, or a dict with train, val, num_classes.")
    if classes is None:
        classes = _find_attr(train, "classes")
    if num_classes is None:
        num_classes = _find_attr(train, "num_classes")
    if num_classes is None and classes is not None:
        num_classes = len(classes)
    if num_classes is None:
        raise UserError(f"data.name: cannot tell how many classes {spec} has. Give its dataset a "
                        "`classes` list or a `num_classes` attribute, or return "
                        "dict(train=..., val=..., num_classes=N).")
    num_classes = int(num_classes)
    classes = [str(c) for c in classes] if classes is not None else [str(i) for i in range(num_classes)]
    return DataBundle(train, val, num_classes, _input_shape(train, spec), classes)


def _find_attr(ds: Any, name: str) -> Any:
    """An attribute of the dataset, looking through Subset wrappers (random_split returns those)."""
    while ds is not None:
        if getattr(ds, name, None) is not None:
            return getattr(ds, name)
        ds = ds.dataset if isinstance(ds, Subset) else None
    return None


def _input_shape(ds: Any, spec: str) -> tuple[int, ...]:
    try:
        n = len(ds)
    except TypeError:
        n = None
    if n == 0:
        raise UserError(f"data.name: {spec} returned an empty training set. Check its data.args and files.")
    item = ds[0]
    x = item[0] if isinstance(item, (tuple, list)) else None
    if not isinstance(x, torch.Tensor):
        raise UserError(f"data.name: items of {spec} must be (tensor, label) pairs, got {type(item).__name__}"
                        f"{' of ' + type(x).__name__ if x is not None else ''}. "
                        "Add a transform that makes a tensor (torchvision.transforms.ToTensor()).")
    return tuple(x.shape)
