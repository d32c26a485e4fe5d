"""The run's batches: the datasets (shrunk by train.overfit_batches), the train loader of the epoch
under way, and the validation loader.

A map dataset is read through the resumable EpochSampler, which starts mid-epoch where a resume
left off; a stream restarts and skips the batches already seen. Every loader has a generator of its
own, so creating or iterating one never draws from the global RNG (a resumed run evaluates at
other moments, and must not diverge for it).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader

from ..build.data import DataBundle, build_datasets, dataset_size, loader_workers, overfit, stream_batches
from ..build.pretrained import normalization
from ..build.sampler import EpochSampler
from ..config.schema import Config
from .overfit import OverfitWatch, describe as describe_overfit


def datasets(cfg: Config) -> tuple[DataBundle, OverfitWatch | None]:
    """The datasets; with train.overfit_batches, the first batches only, and the watch on their loss."""
    bundle = build_datasets(cfg.data, cfg.run.seed, normalize=normalization(cfg.model))
    if not cfg.train.overfit_batches:
        return bundle, None
    bundle = overfit(bundle, cfg.train.overfit_batches, cfg.data.batch_size)
    bundle.notes.append(describe_overfit(cfg.train.overfit_batches, cfg.data.batch_size))
    return bundle, OverfitWatch(start=cfg.schedule.warmup_steps)


def has_val(bundle: DataBundle) -> bool:
    """A validation set with items in it (a stream's size is None: it counts)."""
    return bundle.val is not None and dataset_size(bundle.val) != 0


def train_batches(bundle: DataBundle, cfg: Config, epoch: int, batch_in_epoch: int, pin_memory: bool) -> Any:
    """The training batches of `epoch` from micro-batch `batch_in_epoch` on (0: the whole epoch)."""
    data, seed = cfg.data, cfg.run.seed
    if bundle.stream:
        return stream_batches(bundle.train, data.batch_size, data.num_workers, pin_memory,
                              skip=batch_in_epoch, seed=seed)
    sampler = EpochSampler(len(bundle.train), seed, epoch, start=batch_in_epoch * data.batch_size,
                           shuffle=not cfg.train.overfit_batches)
    g = torch.Generator()
    g.manual_seed(seed * 7919 + epoch)  # worker seeds do not touch the global RNG
    return DataLoader(bundle.train, batch_size=data.batch_size, sampler=sampler,
                      num_workers=data.num_workers, pin_memory=pin_memory, drop_last=True, generator=g)


def val_loader(bundle: DataBundle, cfg: Config, pin_memory: bool) -> DataLoader | None:
    """The validation loader (twice the batch, in order), or None without a validation set."""
    if not has_val(bundle):
        return None
    data = cfg.data
    # its own generator: creating its iterator must not draw from the global RNG,
    # or a resumed run (which evaluates at other moments) would diverge
    return DataLoader(bundle.val, batch_size=data.batch_size * 2, shuffle=False,
                      num_workers=loader_workers(bundle.val, data.num_workers), pin_memory=pin_memory,
                      persistent_workers=data.num_workers > 0,
                      generator=torch.Generator().manual_seed(cfg.run.seed))
