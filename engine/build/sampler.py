"""A shuffling sampler that can start mid-epoch, so a resumed run sees the same batches."""

from __future__ import annotations

import torch
from torch.utils.data import Sampler


class EpochSampler(Sampler[int]):
    """The permutation of epoch `epoch` under `seed`, from position `start` on."""

    def __init__(self, n: int, seed: int, epoch: int, start: int = 0, shuffle: bool = True):
        self.n, self.seed, self.epoch, self.start, self.shuffle = n, seed, epoch, start, shuffle

    def order(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.n))
        g = torch.Generator()
        g.manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(self.n, generator=g).tolist()

    def __iter__(self):
        return iter(self.order()[self.start:])

    def __len__(self) -> int:
        return max(0, self.n - self.start)
