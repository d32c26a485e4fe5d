"""A dataset that makes the loop wait for its batches: used as data.name="<this file>:build"."""

import time

import torch
from torch.utils.data import Dataset


class SlowData(Dataset):
    def __init__(self, n: int, delay: float):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 1, 8, 8, generator=g)
        self.y = torch.randint(0, 2, (n,), generator=g)
        self.delay = delay

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        time.sleep(self.delay)  # stands in for slow decoding or a slow disk
        return self.x[i], self.y[i]


def build(n: int = 256, delay: float = 0.002, **_):
    return {"train": SlowData(n, delay), "val": None, "num_classes": 2}
