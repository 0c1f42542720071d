"""Samples held in memory: a source of the SOURCES table read once, checked, split as tensors."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.utils.data import Dataset, TensorDataset

from logitlab.data.checks import as_features, validate_part
from logitlab.data.fingerprint import hash_tensor
from logitlab.data.sources import SOURCES, Loaded
from logitlab.data.standardize import Standardization
from logitlab.errors import ConfigError


class TensorSamples:
    """The samples of an in-memory source (digits, tables, MNIST, npz, csv) as tensors.

    Images stay uint8 until each split is gathered, so the loaded set and its float32 splits are
    never all in memory at once; standardisation then works in place.
    """

    in_memory = True

    def __init__(
        self,
        source: str,
        num_features: int | None = None,
        seed: int = 0,
        data_dir: str = "data",
        download: bool = False,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.source, self.num_features, self.seed = source, num_features, seed
        self.data_dir, self.download = data_dir, download
        self.options = dict(options or {})
        self.pixel_max: float | None = None  # images: the value of a white pixel, once scaled

    def prepare(self) -> None:
        """Download torchvision datasets when data.download=true."""
        if self.download:
            SOURCES[self.source](data_dir=self.data_dir, download=True, seed=self.seed)

    def read(self, num_classes: int | None) -> Loaded:
        """The source's parts as they are on disk."""
        return SOURCES[self.source](
            num_features=self.num_features,
            num_classes=num_classes,
            seed=self.seed,
            data_dir=self.data_dir,
            download=False,
            **self.options,
        )

    def check(
        self, part: str, x: Any, y: Any, num_classes: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One part's (features, labels) checked once; images kept as uint8."""
        x_t, y_t = validate_part(self.source, part, x, y, num_classes, keep_uint8=True)
        if x_t.ndim == 4 and part in ("all", "train"):
            unit = x_t.dtype == torch.uint8 or bool(x_t.min() >= 0 and x_t.max() <= 1)
            self.pixel_max = 1.0 if unit else None  # uint8 is scaled to [0, 1] when gathered
        features = math.prod(x_t.shape[1:])
        if self.num_features is not None and features != self.num_features:
            raise ConfigError(
                f"data.num_features={self.num_features} but dataset '{self.source}' has "
                f"{features} features per sample; set data.num_features={features} (or null)"
            )
        return x_t, y_t

    def digest(self, digest: Any, x: torch.Tensor) -> None:
        """Add a part's features to the data's fingerprint."""
        hash_tensor(digest, x)

    def gather(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """A split's float32 features."""
        return as_features(x.index_select(0, index))

    def settle(self, train: tuple[torch.Tensor, torch.Tensor]) -> tuple[int, ...]:
        """One sample's shape: (F,) for a table, (C, H, W) for images."""
        return tuple(train[0].shape[1:])

    def statistics(self, train: tuple[torch.Tensor, torch.Tensor], workers: int) -> Standardization:
        """Mean and std of the training features."""
        return Standardization.fit(train[0])

    def standardize_(self, x: torch.Tensor, stats: Standardization) -> None:
        """Standardise a split's features in place."""
        stats.apply_(x)

    def dataset(
        self, x: torch.Tensor, y: torch.Tensor, train: bool, stats: Standardization | None
    ) -> Dataset:
        """A split as a Dataset (its features are standardised already)."""
        return TensorDataset(x, y)

    def names(self, x: torch.Tensor) -> list[str] | None:
        """Samples are rows, not files: no names."""
        return None

    def record(self) -> dict[str, Any]:
        """What data.json adds for images in [0, 1]: the pixel scale (a source may declare
        another, as digits does: 0..16)."""
        return {} if self.pixel_max is None else {"pixel_max": self.pixel_max}
