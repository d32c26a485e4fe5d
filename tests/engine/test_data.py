"""Datasets as a user meets them: the built-in shapes, torchvision formats on disk, their own code."""

from __future__ import annotations

import struct
import sys
import textwrap
import uuid
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from danlu.engine.build.data import build_datasets
from danlu.engine.errors import UserError
from danlu.engine.build.shapes import ShapesDataset


def data_cfg(name="shapes", root=None, download=False, val_fraction=0.1, **args):
    return SimpleNamespace(name=name, root=None if root is None else str(root), download=download,
                           val_fraction=val_fraction, args=args)


@pytest.fixture
def clean_sys_path(monkeypatch):
    """resolve_target may add the cwd to sys.path; keep that from leaking into other tests."""
    monkeypatch.setattr(sys, "path", list(sys.path))


# --- shapes ---------------------------------------------------------------------------------

def test_shapes_same_seed_same_items_in_any_order():
    a, b = ShapesDataset(size=40, seed=7), ShapesDataset(size=40, seed=7)
    forward = [a[i] for i in range(40)]
    backward = [b[i] for i in reversed(range(40))][::-1]
    for (xa, ya), (xb, yb) in zip(forward, backward):
        assert ya == yb
        assert torch.equal(xa, xb)


def test_shapes_differ_across_seeds_and_items():
    a, b = ShapesDataset(size=20, seed=0), ShapesDataset(size=20, seed=1)
    assert not torch.equal(a[3][0], b[3][0])
    assert not torch.equal(a[3][0], a[9][0])  # same class (3 % 6 == 9 % 6), different drawing


def test_shapes_batched_fetch_matches_single_items():
    ds = ShapesDataset(size=64, seed=2)
    batch = ds.__getitems__([5, 0, 63, 5, 17])
    for i, (x, y) in zip([5, 0, 63, 5, 17], batch):
        assert y == ds[i][1]
        assert torch.equal(x, ds[i][0])


def test_shapes_items_are_normalised_images():
    ds = ShapesDataset(size=300)
    x, y = ds[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and isinstance(y, int)
    xs = torch.stack([ds[i][0] for i in range(300)])
    assert abs(xs.mean().item()) < 0.15
    assert 0.8 < xs.std().item() < 1.2
    assert ds.classes[:3] == ["circle", "square", "triangle"] and len(ds.classes) == ds.num_classes == 6


def test_shapes_options_and_index_bounds():
    ds = ShapesDataset(size=10, image_size=16, num_classes=3, noise=0.0, channels=1)
    assert ds[0][0].shape == (1, 16, 16)
    assert {ds[i][1] for i in range(10)} == {0, 1, 2}
    assert torch.equal(ds[-1][0], ds[9][0])
    with pytest.raises(IndexError):
        ds[10]
    with pytest.raises(UserError, match="num_classes"):
        ShapesDataset(num_classes=99)


def test_shapes_split_is_balanced_and_fixed_by_seed():
    bundle = build_datasets(data_cfg(size=1200, val_fraction=0.25), seed=0)
    assert bundle.num_classes == 6 and bundle.input_shape == (3, 32, 32)
    assert bundle.classes == ShapesDataset().classes
    assert (len(bundle.train), len(bundle.val)) == (900, 300)
    counts = Counter(bundle.train.dataset.label(i) for i in bundle.train.indices)
    assert len(counts) == 6 and max(counts.values()) < 1.25 * min(counts.values())
    again = build_datasets(data_cfg(size=1200, val_fraction=0.25), seed=0)
    other = build_datasets(data_cfg(size=1200, val_fraction=0.25), seed=1)
    assert list(again.val.indices) == list(bundle.val.indices)
    assert list(other.val.indices) != list(bundle.val.indices)
    # The run seed also seeds the drawings, so another seed is another dataset.
    assert not torch.equal(again.train.dataset[0][0], other.train.dataset[0][0])


def test_shapes_args_and_no_val_split():
    bundle = build_datasets(data_cfg(size=50, image_size=24, num_classes=4, val_fraction=0.0), seed=0)
    assert bundle.val is None and len(bundle.train) == 50
    assert bundle.input_shape == (3, 24, 24) and bundle.num_classes == 4
    with pytest.raises(UserError, match="colour"):
        build_datasets(data_cfg(colour="red"), seed=0)


def test_unknown_dataset_name_is_a_user_error():
    with pytest.raises(UserError, match="data.name"):
        build_datasets(data_cfg(name="imagenette"), seed=0)


# --- image_folder -----------------------------------------------------------------------------

def test_image_folder_of_pngs(tmp_path):
    from PIL import Image

    for c, colour in [("cat", (255, 0, 0)), ("dog", (0, 255, 0)), ("frog", (0, 0, 255))]:
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (40 + i, 30), colour).save(tmp_path / "imgs" / c / f"{i}.png")
    bundle = build_datasets(data_cfg("image_folder", tmp_path / "imgs", val_fraction=0.25, image_size=24), seed=0)
    assert bundle.num_classes == 3 and bundle.classes == ["cat", "dog", "frog"]
    assert bundle.input_shape == (3, 24, 24)
    assert (len(bundle.train), len(bundle.val)) == (9, 3)
    x, y = bundle.train[0]
    assert x.shape == (3, 24, 24) and 0 <= y < 3


def test_image_folder_missing_or_empty(tmp_path):
    with pytest.raises(UserError, match="data.root"):
        build_datasets(data_cfg("image_folder", tmp_path / "nope"), seed=0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="subfolder"):
        build_datasets(data_cfg("image_folder", tmp_path / "empty"), seed=0)


# --- MNIST-format files on disk -----------------------------------------------------------------

def write_idx(path: Path, data: torch.Tensor) -> None:
    """An uncompressed idx file: magic (0, 0, type 0x08 = ubyte, ndim), big-endian dims, bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">I", 0x0800 | data.dim()) + b"".join(struct.pack(">I", d) for d in data.shape)
    path.write_bytes(header + data.to(torch.uint8).contiguous().numpy().tobytes())


def write_mnist(raw: Path, n_train: int = 20, n_test: int = 5) -> torch.Tensor:
    labels = torch.arange(n_train) % 10
    images = torch.zeros(n_train, 28, 28, dtype=torch.uint8)
    images[:, 10:18, 10:18] = 255
    write_idx(raw / "train-images-idx3-ubyte", images)
    write_idx(raw / "train-labels-idx1-ubyte", labels)
    write_idx(raw / "t10k-images-idx3-ubyte", torch.zeros(n_test, 28, 28, dtype=torch.uint8))
    write_idx(raw / "t10k-labels-idx1-ubyte", torch.arange(n_test) % 10)
    return labels


@pytest.mark.parametrize("name,folder,mean", [("mnist", "MNIST", 0.1307), ("fashion_mnist", "FashionMNIST", 0.2860)])
def test_mnist_format_files_load_through_torchvision(tmp_path, name, folder, mean):
    labels = write_mnist(tmp_path / folder / "raw")
    bundle = build_datasets(data_cfg(name, tmp_path, val_fraction=0.2), seed=0)
    assert bundle.num_classes == 10 and bundle.input_shape == (1, 28, 28)
    assert (len(bundle.train), len(bundle.val)) == (16, 4)
    i = bundle.train.indices[0]
    x, y = bundle.train[0]
    assert x.shape == (1, 28, 28) and y == int(labels[i])
    assert x[0, 0, 0].item() == pytest.approx(-mean / (0.3081 if name == "mnist" else 0.3530), abs=1e-4)
    assert x[0, 14, 14].item() > 2  # the white square, normalised


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_missing_files_say_how_to_download(tmp_path, name):
    with pytest.raises(UserError) as e:
        build_datasets(data_cfg(name, tmp_path / "data", download=False), seed=0)
    msg = str(e.value)
    assert "data.download=true" in msg and str(tmp_path / "data") in msg
    assert not (tmp_path / "data").exists()  # nothing was fetched or created


def test_torchvision_dataset_needs_a_root():
    with pytest.raises(UserError, match="data.root"):
        build_datasets(data_cfg("mnist", None), seed=0)


# --- the user's own datasets ---------------------------------------------------------------------

USER_DATA = textwrap.dedent("""
    import torch
    from torch.utils.data import Dataset, TensorDataset

    class Blobs(Dataset):
        classes = ["a", "b", "c"]
        def __init__(self, n):
            self.x = torch.randn(n, 2, 5, 5)
        def __len__(self):
            return len(self.x)
        def __getitem__(self, i):
            return self.x[i], i % 3

    def make(n=10):
        return Blobs(n)

    def pair(n=10):
        return Blobs(n), Blobs(4)

    def as_dict():
        return {"train": TensorDataset(torch.zeros(8, 7), torch.zeros(8, dtype=torch.long)), "num_classes": 5}

    def unknown_classes():
        return TensorDataset(torch.zeros(8, 7), torch.zeros(8, dtype=torch.long))
""")


@pytest.fixture
def user_module(tmp_path, monkeypatch, clean_sys_path):
    name = f"userdata_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(USER_DATA)
    monkeypatch.chdir(tmp_path)
    yield name
    sys.modules.pop(name, None)


def test_user_dataset_from_the_working_directory(user_module):
    bundle = build_datasets(data_cfg(f"{user_module}:make", n=20, val_fraction=0.25), seed=0)
    assert bundle.num_classes == 3 and bundle.classes == ["a", "b", "c"]
    assert bundle.input_shape == (2, 5, 5)
    assert (len(bundle.train), len(bundle.val)) == (15, 5)


def test_user_dataset_returning_a_pair_or_a_dict(user_module):
    bundle = build_datasets(data_cfg(f"{user_module}:pair", val_fraction=0.5), seed=0)
    assert (len(bundle.train), len(bundle.val)) == (10, 4)  # their own val is kept, not re-split
    bundle = build_datasets(data_cfg(f"{user_module}:as_dict", val_fraction=0.0), seed=0)
    assert bundle.num_classes == 5 and bundle.input_shape == (7,) and bundle.val is None


def test_user_dataset_problems_are_user_errors(user_module):
    # no classes is fine for regression; a classification loss asks for them (tests/engine/test_fit.py)
    assert build_datasets(data_cfg(f"{user_module}:unknown_classes"), seed=0).num_classes is None
    with pytest.raises(UserError, match="data.args"):
        build_datasets(data_cfg(f"{user_module}:make", bogus=1), seed=0)
    with pytest.raises(UserError, match="has no attribute 'mkae'"):
        build_datasets(data_cfg(f"{user_module}:mkae"), seed=0)


def test_user_dataset_by_file_path(tmp_path, monkeypatch, clean_sys_path):
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "my_data.py").write_text(USER_DATA)
    monkeypatch.chdir(tmp_path)
    bundle = build_datasets(data_cfg("project/my_data.py:make", n=8, val_fraction=0.0), seed=0)
    assert bundle.num_classes == 3 and len(bundle.train) == 8
