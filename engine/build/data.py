"""Build the train and validation datasets a config names."""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Subset, random_split

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
    num_classes: int | None          # None: the dataset does not say (fine for regression losses)
    input_shape: tuple[int, ...]
    classes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the run log should say about the data

    @property
    def stream(self) -> bool:
        """The training set is an IterableDataset: read in its own order, no index, maybe no length."""
        return isinstance(self.train, IterableDataset)


def build_datasets(cfg: Any, seed: int, normalize: tuple | None = None) -> DataBundle:
    """Build the datasets `cfg` (the data section) names; the val split is fixed by `seed`.

    `normalize`: (mean, std, whose) of pretrained weights, which image_folder data is normalised with.
    """
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
        bundle = _image_folder(cfg, args, normalize)
    elif ":" in name:
        bundle = _user_data(name, args)
    else:
        raise UserError(f"data.name: unknown dataset {name!r}. Use shapes, mnist, fashion_mnist, cifar10, "
                        "image_folder, or package.module:callable for your own.")
    if bundle.stream:
        if bundle.val is None and val_fraction > 0:
            bundle.notes.append(f"data.val_fraction {val_fraction:g} ignored: an IterableDataset cannot be split, "
                                "so this run has no validation set. Return (train, val) from your builder to "
                                "evaluate.")
        bundle.notes.append("the training set is an IterableDataset: read in its own order (no shuffling by "
                            "danlu), started again from its beginning when it ends; a resume skips the "
                            "batches already trained on by reading them again")
    elif bundle.val is None and val_fraction > 0:
        bundle.train, bundle.val = split(bundle.train, val_fraction, seed)
    for which, ds in (("training", bundle.train), ("validation", bundle.val)):
        workers = int(getattr(cfg, "num_workers", 0) or 0)
        if ds is not None and loader_workers(ds, workers) < workers:
            bundle.notes.append(f"data.num_workers {workers} -> 1 for the {which} set: it is an IterableDataset "
                                "that does not split itself between workers (torch.utils.data.get_worker_info), "
                                "so each worker would yield every item")
    return bundle


def overfit(bundle: DataBundle, batches: int, batch_size: int) -> DataBundle:
    """train.overfit_batches: the first `batches` batches of the training set, for training and validation."""
    n = int(batches) * int(batch_size)
    if bundle.stream:
        items = []
        for item in bundle.train:
            items.append(item)
            if len(items) == n:
                break
        train: Any = items  # a list is a map-style dataset: the same items, in order, every epoch
    else:
        train = Subset(bundle.train, range(min(n, len(bundle.train))))
    if len(train) < n:
        raise UserError(f"train.overfit_batches={batches}: needs {n} training items ({batches} x data.batch_size "
                        f"{batch_size}), the training set has {len(train)}. Lower train.overfit_batches or "
                        "data.batch_size.")
    bundle.train, bundle.val = train, train
    return bundle


def dataset_size(ds: Any) -> int | None:
    """len(ds), or None for a stream without a length."""
    try:
        return len(ds)
    except TypeError:
        return None


def loader_workers(ds: Any, num_workers: int) -> int:
    """Workers a DataLoader over `ds` may use: every worker of a stream runs the whole stream
    unless the dataset divides it with get_worker_info(), so such streams get at most one."""
    if num_workers <= 1 or not isinstance(ds, IterableDataset):
        return num_workers
    try:
        source = inspect.getsource(type(ds))
    except (OSError, TypeError):
        source = ""
    return num_workers if "get_worker_info" in source else 1


def stream_batches(ds: IterableDataset, batch_size: int, num_workers: int, pin_memory: bool,
                   skip: int, seed: int) -> Iterator[Any]:
    """Batches of a stream, started again whenever it ends, after skipping `skip` batches (a resume)."""
    workers = loader_workers(ds, num_workers)
    while True:
        # its own generator: starting an iterator must not draw from the global RNG (dropout's),
        # or a resume, which starts them at other moments, would diverge
        loader = DataLoader(ds, batch_size=batch_size, num_workers=workers, pin_memory=pin_memory, drop_last=True,
                            generator=torch.Generator().manual_seed(seed))
        seen = 0
        for batch in loader:
            seen += 1
            if seen > skip:
                yield batch
        if seen == 0:
            raise UserError(f"data: the training stream ended without a full batch of {batch_size} items. "
                            "Check the dataset, or lower data.batch_size.")
        skip = max(0, skip - seen)  # a resume further in than one pass goes on skipping in the next


def sample_batch(ds: Any, n: int) -> Any:
    """The first `n` items collated as the DataLoader does: what the model is checked against."""
    size, g = dataset_size(ds), torch.Generator()  # a generator of its own: the global RNG is left alone
    if size is not None and not isinstance(ds, IterableDataset):
        n = max(1, min(n, size))
        return next(iter(DataLoader(Subset(ds, range(n)), batch_size=n, generator=g)))
    try:
        return next(iter(DataLoader(ds, batch_size=n, generator=g)))
    except StopIteration:
        raise UserError("data: the training set gave no items. Check the dataset and its data.args.") from None


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


def _image_folder(cfg: Any, args: dict, normalize: tuple | None = None) -> DataBundle:
    from torchvision import datasets, transforms

    _check_args("image_folder", args, IMAGE_FOLDER_ARGS)
    root = _root(cfg, "image_folder")
    if not os.path.isdir(root):
        raise UserError(f"data.root: {root} is not a folder. Point data.root at a folder with one "
                        "subfolder of images per class.")
    size = int(args.get("image_size", 64))
    mean, std = (normalize[0], normalize[1]) if normalize else (IMAGENET_MEAN, IMAGENET_STD)
    tf = transforms.Compose([
        transforms.Resize(size),
        transforms.CenterCrop(size),  # Resize keeps the aspect ratio; the crop makes every item square
        transforms.ToTensor(),
        transforms.Normalize(mean, std),
    ])
    try:
        ds = datasets.ImageFolder(root, transform=tf)
    except (FileNotFoundError, RuntimeError) as e:
        raise UserError(f"data.root: {root} has no usable images ({e}). It needs one subfolder per class, "
                        "each holding images (.png, .jpg, ...).") from None
    notes = [f"image_folder normalised with {normalize[2]}'s mean {list(mean)} and std {list(std)}"] if normalize else []
    return DataBundle(ds, None, len(ds.classes), (3, size, size), list(ds.classes), notes)


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
        extra = (" For a generator or another iterable, subclass torch.utils.data.IterableDataset "
                 "and yield (input, target) pairs from its __iter__." if hasattr(out, "__iter__") else "")
        raise UserError(f"data.name: {spec} returned a {type(out).__name__}. "
                        "Return a Dataset, a (train, val) tuple, or a dict with train, val, num_classes." + extra)
    if classes is None:
        classes = _find_attr(train, "classes")
    if num_classes is None:
        num_classes = _find_attr(train, "num_classes")
    if num_classes is None and classes is not None:
        num_classes = len(classes)
    # None is fine here: a classification loss asks for it (engine/build/loss.py), a regression one does not
    num_classes = int(num_classes) if num_classes is not None else None
    if classes is not None:
        classes = [str(c) for c in classes]
    elif num_classes is not None:
        classes = [str(i) for i in range(num_classes)]
    return DataBundle(train, val, num_classes, _input_shape(train, spec), classes or [])


def _find_attr(ds: Any, name: str) -> Any:
    """An attribute of the dataset, looking through Subset wrappers (random_split returns those)."""
    while ds is not None:
        if getattr(ds, name, None) is not None:
            return getattr(ds, name)
        ds = ds.dataset if isinstance(ds, Subset) else None
    return None


def _input_shape(ds: Any, spec: str) -> tuple[int, ...]:
    if dataset_size(ds) == 0:
        raise UserError(f"data.name: {spec} returned an empty training set. Check its data.args and files.")
    if isinstance(ds, IterableDataset):
        item = next(iter(ds), None)
        if item is None:
            raise UserError(f"data.name: {spec} returned a stream that yields nothing. Check its data.args and files.")
    else:
        item = ds[0]
    x = item[0] if isinstance(item, (tuple, list)) else None
    if not isinstance(x, torch.Tensor):
        raise UserError(f"data.name: items of {spec} must be (tensor, label) pairs, got {type(item).__name__}"
                        f"{' of ' + type(x).__name__ if x is not None else ''}. "
                        "Add a transform that makes a tensor (torchvision.transforms.ToTensor()).")
    return tuple(x.shape)
