"""Batch-level augmentation for in-memory images: random shift, horizontal flip, erasing.

Applied to whole training batches on the batch's device (tensor ops, no per-sample Python),
from a generator seeded by the run's seed and the global step, so a resumed run draws exactly
what an uninterrupted one would. Validation and test batches are never augmented.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from logitlab.errors import ConfigError


@dataclass(frozen=True)
class Augment:
    """What to do to each training image: `shift` pixels of random translation (zero padding
    in standardised units, i.e. the mean), a horizontal `flip` with probability 1/2, and
    random `erase` of a rectangle (2-20 % of the image) with that probability."""

    shift: int = 0
    flip: bool = False
    erase: float = 0.0

    def __post_init__(self) -> None:
        if self.shift < 0:
            raise ConfigError(f"data.augment.shift={self.shift} must be >= 0 pixels")
        if not 0.0 <= self.erase <= 1.0:
            raise ConfigError(f"data.augment.erase={self.erase} must be a probability in [0, 1]")

    @property
    def active(self) -> bool:
        """Whether any augmentation is switched on."""
        return self.shift > 0 or self.flip or self.erase > 0

    def step(self, x: torch.Tensor, seed: int, step: int, rank: int) -> torch.Tensor:
        """A training batch as the training step `step` of rank `rank` sees it: image batches
        augmented with draws of that step, so a resumed run sees what an unbroken one would."""
        if not self.active or x.ndim != 4:
            return x
        return self(x, (seed * 1_000_003 + step) * 101 + rank)

    def __call__(self, x: torch.Tensor, seed: int) -> torch.Tensor:
        """An augmented copy of the image batch `x` (N, C, H, W), drawn from `seed`."""
        generator = torch.Generator(device=x.device).manual_seed(seed)
        if self.shift:
            x = random_shift(x, self.shift, generator)
        if self.flip:
            flip = torch.rand(len(x), generator=generator, device=x.device) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        if self.erase:
            x = random_erase(x, self.erase, generator)
        return x


def random_shift(x: torch.Tensor, pixels: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by its own (dy, dx) in [-pixels, pixels], zero-filled."""
    n, _, height, width = x.shape
    padded = torch.nn.functional.pad(x, (pixels, pixels, pixels, pixels))
    offsets = torch.randint(0, 2 * pixels + 1, (2, n), generator=generator, device=x.device)
    rows = offsets[0][:, None] + torch.arange(height, device=x.device)  # (N, H)
    cols = offsets[1][:, None] + torch.arange(width, device=x.device)  # (N, W)
    index = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[index, channel, rows[:, None, :, None], cols[:, None, None, :]]


def random_erase(x: torch.Tensor, probability: float, generator: torch.Generator) -> torch.Tensor:
    """Zero a random rectangle (2-20 % of the area, aspect 0.3-3.3) in a fraction of images."""
    n, _, height, width = x.shape
    device = x.device
    uniform = torch.rand(5, n, generator=generator, device=device)
    area = (0.02 + 0.18 * uniform[0]) * height * width
    aspect = torch.exp(torch.log(torch.tensor(0.3)) + uniform[1] * torch.log(torch.tensor(11.0)))
    h = (area * aspect).sqrt().round().clamp(1, height)
    w = (area / aspect).sqrt().round().clamp(1, width)
    top = (uniform[2] * (height - h + 1)).floor()
    left = (uniform[3] * (width - w + 1)).floor()
    rows = torch.arange(height, device=device)[None, :]
    cols = torch.arange(width, device=device)[None, :]
    inside_rows = (rows >= top[:, None]) & (rows < (top + h)[:, None])  # (N, H)
    inside_cols = (cols >= left[:, None]) & (cols < (left + w)[:, None])  # (N, W)
    chosen = (uniform[4] < probability)[:, None, None]
    mask = inside_rows[:, :, None] & inside_cols[:, None, :] & chosen
    return x.masked_fill(mask[:, None], 0.0)
