"""Batch-level augmentation of training batches: random shift, horizontal flip and erasing of
images; mixup and cutmix (data/mixing.py) of images and mixup of table rows.

Applied to whole training batches on the batch's device (tensor ops, no per-sample Python),
from a generator seeded by the run's seed and the global step, so a resumed run draws exactly
what an uninterrupted one would. Validation and test batches are never augmented.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from logitlab.data.mixing import mix_batch
from logitlab.errors import ConfigError


@dataclass(frozen=True)
class Augment:
    """What to do to each training image: `shift` pixels of random translation (zero padding
    in standardised units, i.e. the mean), a horizontal `flip` with probability 1/2, and
    random `erase` of a rectangle (2-20 % of the image) with that probability; `mixup` and
    `cutmix`: the Beta alphas (0 = off) of the batches mixed with probability `mix_prob`."""

    shift: int = 0
    flip: bool = False
    erase: float = 0.0
    mixup: float = 0.0
    cutmix: float = 0.0
    mix_prob: float = 1.0

    def __post_init__(self) -> None:
        for name in ("mixup", "cutmix"):
            if getattr(self, name) < 0:
                raise ConfigError(
                    f"data.augment.{name}={getattr(self, name)} must be >= 0 (a Beta alpha; 0: off)"
                )
        if not 0.0 <= self.mix_prob <= 1.0:
            raise ConfigError(f"data.augment.mix_prob={self.mix_prob} must be in [0, 1]")
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

    def training_batch(
        self, x: torch.Tensor, y: torch.Tensor, trainer: Any, classes: int, task: str, seed: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A training batch as `trainer`'s current step sees it: augmented, then mixed (for the
        `task`'s head); other batches (validation, test, predict) as they came."""
        if not (self.active or self.mixup or self.cutmix):
            return x, y  # nothing to do: the trainer's step is not read
        if trainer is None or not trainer.training:
            return x, y
        step, rank, binary = trainer.global_step, trainer.global_rank, task == "binary"
        return self.mix(self.step(x, seed, step, rank), y, classes, binary, seed, step, rank)

    def mix(
        self, x: torch.Tensor, y: torch.Tensor, classes: int, binary: bool, seed: int, step: int,
        rank: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """The batch of training step `step` mixed (data.augment.mixup, cutmix), with its soft
        targets; as it came when both are off."""
        if not (self.mixup or self.cutmix):
            return x, y
        seed = ((seed * 1_000_003 + step) * 101 + rank) * 7 + 1  # not the seed step() draws from
        return mix_batch(x, y, classes, binary, (self.mixup, self.cutmix), self.mix_prob, seed)

    def check_fits(self, input_shape: tuple[int, ...], source: str) -> None:
        """Refuse cutmix on data that are not images (a table's rows have no patches)."""
        if self.cutmix and len(input_shape) != 3:
            raise ConfigError(
                f"data.augment.cutmix={self.cutmix} cuts patches out of images, and data={source} "
                f"is a table (input shape {list(input_shape)}); use data.augment.mixup for tables"
            )

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
