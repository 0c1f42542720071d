"""Standardisation statistics: measured on the training split only, saved in data.json, reused."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

import torch

from logitlab.errors import ConfigError


class Standardization:
    """Per-feature (tables) or per-channel (images, (C, H, W)) mean and std."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean, self.std = mean, std

    @staticmethod
    def axes(shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape the statistics take for samples of `shape`: one per channel for images."""
        return (-1, 1, 1) if len(shape) == 3 else (-1,)

    @classmethod
    def fit(cls, x: torch.Tensor) -> Standardization:
        """Statistics of in-memory training samples (N, F) or (N, C, H, W)."""
        dims = (0, 2, 3) if x.ndim == 4 else (0,)
        mean = x.mean(dim=dims, keepdim=True)[0]
        std = x.std(dim=dims, keepdim=True)[0]
        std[std == 0] = 1.0  # constant features stay finite
        return cls(mean, std)

    @classmethod
    def fit_stream(cls, batches: Iterable[torch.Tensor], shape: tuple[int, ...]) -> Standardization:
        """Statistics of batches of samples of `shape` in one pass, in float64: per channel for
        images (N, C, H, W), per feature for tables (N, F)."""
        dims = (0, 2, 3) if len(shape) == 3 else (0,)
        total = torch.zeros(shape[0], dtype=torch.float64)
        squares = torch.zeros(shape[0], dtype=torch.float64)
        count = 0
        for x in batches:
            x = x.to(torch.float64)
            total += x.sum(dim=dims)
            squares += x.square().sum(dim=dims)
            count += x.numel() // shape[0]
        mean = total / count
        std = (squares / count - mean.square()).clamp_min(0).sqrt()
        std[std < 1e-6] = 1.0  # a constant channel or feature stays finite
        axes = cls.axes(shape)
        return cls(mean.float().reshape(axes), std.float().reshape(axes))

    @classmethod
    def read(cls, path: str | Path, shape: tuple[int, ...]) -> Standardization:
        """The statistics a run saved in its data.json, checked against the sample shape."""
        try:
            saved = json.loads(Path(path).read_text())
            mean, std = torch.tensor(saved["mean"]), torch.tensor(saved["std"])
        except (ValueError, KeyError, TypeError):
            raise ConfigError(
                f"{path} is not readable JSON with mean and std; delete it to measure them "
                "again from the training split"
            ) from None
        size = shape[0] if len(shape) == 3 else math.prod(shape)
        if not (torch.isfinite(mean).all() and torch.isfinite(std).all() and (std > 0).all()):
            raise ConfigError(
                f"{path} holds a std that is not a positive finite number (or a mean that is "
                "not finite), which no training split gives; delete it to measure them again"
            )
        if mean.shape != std.shape or mean.numel() != size:
            raise ConfigError(
                f"{path} holds {mean.numel()} means, but the data has {size} features or "
                "channels; it belongs to other data"
            )
        return cls(mean.reshape(cls.axes(shape)).float(), std.reshape(cls.axes(shape)).float())

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised samples (a new tensor)."""
        return (x - self.mean) / self.std

    def apply_(self, x: torch.Tensor) -> torch.Tensor:
        """Standardise samples in place."""
        return x.sub_(self.mean).div_(self.std)

    def record(self) -> dict[str, list[float]]:
        """What data.json keeps: the mean and std as flat lists."""
        return {"mean": self.mean.flatten().tolist(), "std": self.std.flatten().tolist()}
