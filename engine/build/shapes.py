"""ShapesDataset: the built-in offline dataset of procedurally drawn shapes, deterministic by seed."""

from __future__ import annotations

import math

import torch
from torch.utils.data import Dataset

from ..errors import UserError

SHAPES = ("circle", "square", "triangle", "cross", "ring", "bar", "diamond", "xmark")

# Pixels are drawn in [0, 1] from uniform colours; these map them to mean ~0, std ~1.
MEAN = 0.5
STD = 0.3

_MASK64 = (1 << 64) - 1
_COS30 = math.cos(math.pi / 6)


def _mix(seed: int, index: int) -> int:
    """splitmix64 of (seed, index): nearby items and seeds get unrelated generator seeds."""
    z = (seed * 0x9E3779B97F4A7C15 + index + 0x632BE59BD9B4E5F5) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


class ShapesDataset(Dataset):
    """Images of coloured shapes on coloured noisy backgrounds; the label is the shape."""

    def __init__(self, size: int = 4000, image_size: int = 32, num_classes: int = 6,
                 noise: float = 0.1, seed: int = 0, channels: int = 3):
        if not 1 <= num_classes <= len(SHAPES):
            raise UserError(f"data.args.num_classes: shapes has {len(SHAPES)} shape kinds, got {num_classes}. "
                            f"Use a number from 2 to {len(SHAPES)}.")
        if image_size < 8:
            raise UserError(f"data.args.image_size: must be at least 8 pixels, got {image_size}.")
        if size < 1:
            raise UserError(f"data.args.size: must be at least 1 item, got {size}.")
        if noise < 0:
            raise UserError(f"data.args.noise: must be >= 0, got {noise}.")
        if channels not in (1, 3):
            raise UserError(f"data.args.channels: must be 1 or 3, got {channels}.")
        self.size = int(size)
        self.image_size = int(image_size)
        self.num_classes = int(num_classes)
        self.noise = float(noise)
        self.seed = int(seed)
        self.channels = int(channels)
        self.classes = list(SHAPES[:num_classes])
        # Pixel centres in [-1, 1]; shared by every item, never written to.
        ax = (torch.arange(self.image_size, dtype=torch.float32) + 0.5) / self.image_size * 2 - 1
        self._yy, self._xx = torch.meshgrid(ax, ax, indexing="ij")

    def __len__(self) -> int:
        return self.size

    def label(self, index: int) -> int:
        """The class of item `index`, without drawing it (classes cycle, so they are balanced)."""
        return self._check(index) % self.num_classes

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, int]]:
        """Draw many items at once (DataLoader calls this per batch); each is the same as alone."""
        idx = [self._check(i) for i in indices]
        n, c, s = len(idx), self.channels, self.image_size
        u = torch.empty(n, 3 + 2 * c)
        noise = torch.empty(n, c, s, s) if self.noise else None
        for row, i in enumerate(idx):
            # A generator per item, not per dataset: the same item comes out whatever the
            # worker, thread, batch or order that asks for it.
            g = torch.Generator().manual_seed(_mix(self.seed, i))
            torch.rand(u.shape[1], generator=g, out=u[row])
            if noise is not None:
                torch.randn((c, s, s), generator=g, out=noise[row])
        labels = [i % self.num_classes for i in idx]
        img = self._draw(labels, u)
        if noise is not None:
            img.add_(noise.mul_(self.noise / STD))
        return list(zip(img.unbind(0), labels))

    def _check(self, index: int) -> int:
        index = int(index)
        if index < 0:
            index += self.size
        if not 0 <= index < self.size:
            raise IndexError(f"shapes index {index} out of range for {self.size} items")
        return index

    def _draw(self, labels: list[int], u: torch.Tensor) -> torch.Tensor:
        """Noise-free normalised images (N, C, H, W) for the labels and per-item uniforms `u`."""
        c = self.channels
        size, x, y = u[:, :3, None, None].unbind(1)
        r = size * 0.3 + 0.35                          # half-size, in units of the half-image
        room = 0.95 - r                                # keeps the shape inside the frame
        dx = self._xx - (x * 2 - 1) * room
        dy = self._yy - (y * 2 - 1) * room
        present = sorted(set(labels))
        if len(present) == 1:  # a single item: skip the gather/scatter
            d = _sdf(SHAPES[present[0]], dx, dy, r)
        else:
            d = torch.empty_like(dx)
            kinds = torch.tensor(labels)
            for kind in present:
                rows = (kinds == kind).nonzero().squeeze(1)
                d[rows] = _sdf(SHAPES[kind], dx[rows], dy[rows], r[rows])
        # Anti-aliased edge about one pixel wide, so small shapes keep their outline.
        alpha = d.mul_(-self.image_size / 2).add_(0.5).clamp_(0, 1)[:, None]
        bg, shift = u[:, 3:, None, None].split(c, dim=1)
        # Each channel of the foreground sits 0.3-0.7 away from the background (mod 1), so every
        # shape has contrast in every channel and colour alone never tells the class.
        fg = shift.mul(0.4).add_(bg).add_(0.3).remainder_(1.0)
        # Normalise the two colours rather than the whole image: fewer passes over the pixels.
        bg = (bg - MEAN) / STD
        return fg.sub_(MEAN).div_(STD).sub_(bg).mul(alpha).add_(bg)


def _sdf(kind: str, dx: torch.Tensor, dy: torch.Tensor, r: torch.Tensor | float) -> torch.Tensor:
    """Signed distance (approximate; negative inside) from each pixel to the shape's edge."""
    if kind == "circle":
        return torch.sqrt(dx * dx + dy * dy) - r
    if kind == "ring":
        return (torch.sqrt(dx * dx + dy * dy) - 0.75 * r).abs() - 0.25 * r
    ax, ay = dx.abs(), dy.abs()
    if kind == "square":
        return torch.maximum(ax, ay) - 0.8 * r
    if kind == "diamond":
        return (ax + ay) * (1 / math.sqrt(2)) - 0.75 * r
    if kind == "triangle":
        # Equilateral, apex up (y grows downwards): the three edges' half-planes.
        base = dy - 0.5 * r
        sides = ax * _COS30 - 0.5 * dy - 0.5 * r
        return torch.maximum(base, sides)
    if kind == "cross":
        w = 0.3 * r
        return torch.minimum(torch.maximum(ax - w, ay - r), torch.maximum(ay - w, ax - r))
    if kind == "xmark":
        # An X with thin arms: the cross turned 45 degrees.
        u, v = (dx + dy).abs() * (1 / math.sqrt(2)), (dx - dy).abs() * (1 / math.sqrt(2))
        w = 0.15 * r
        return torch.minimum(torch.maximum(u - w, v - r), torch.maximum(v - w, u - r))
    if kind == "bar":
        return torch.maximum(ax - r, ay - 0.3 * r)
    raise ValueError(kind)
