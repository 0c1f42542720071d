"""Data a user brings, as a test writes it: Datasets and a LightningDataModule of real tables
and images (scikit-learn's iris and digits), importable through PYTHONPATH=tests."""

from __future__ import annotations

from typing import ClassVar

import lightning as L
import torch
from sklearn.datasets import load_digits, load_iris
from torch.utils.data import DataLoader, Dataset, Subset


class IrisRows(Dataset):
    """Iris flowers: 4 measurements and the species' name, a string label (no `targets`, so
    logitlab reads the labels in one pass). `part` picks every fifth row for val and test."""

    def __init__(self, part: str | None = None) -> None:
        bunch = load_iris()
        rows = list(range(150))
        if part is not None:
            rows = [r for r in rows if {0: "val", 1: "test"}.get(r % 5, "train") == part]
        self.rows = rows
        self.x = torch.tensor(bunch.data[rows], dtype=torch.float32)
        self.names = [str(bunch.target_names[t]) for t in bunch.target[rows]]

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        return self.x[i], self.names[i]


class DigitsImages(Dataset):
    """scikit-learn's 8x8 digits as (1, 8, 8) images in [0, 1], with torchvision's `targets`
    and `classes` attributes."""

    classes: ClassVar[list[str]] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
    ]

    def __init__(self) -> None:
        digits = load_digits()
        self.images = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16
        self.targets = torch.tensor(digits.target)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[i], self.targets[i]


class DigitsDataModule(L.LightningDataModule):
    """A DataModule of its own: the digits, split by index (the last 300 for test)."""

    def __init__(self, batch_size: int = 64) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.classes = DigitsImages.classes

    def setup(self, stage: str) -> None:
        data = DigitsImages()
        self.train = Subset(data, range(0, 1200))
        self.val = Subset(data, range(1200, 1497))
        self.test = Subset(data, range(1497, 1797))

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val, batch_size=256)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test, batch_size=256)


class NamelessDataModule(DigitsDataModule):
    """A DataModule that says nothing of its classes."""

    def __init__(self) -> None:
        super().__init__()
        self.classes = None


class Unpaired(Dataset):
    """A dataset whose samples are not (x, y) pairs."""

    def __len__(self) -> int:
        return 10

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.zeros(3)


class Ragged(IrisRows):
    """Iris rows of which every tenth (7, 17, ...) has one measurement too many."""

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        x, y = super().__getitem__(i)
        return (torch.cat([x, x[:1]]) if i % 10 == 7 else x), y


class MultiHot(IrisRows):
    """Iris rows with a multi-hot label vector: a multilabel target."""

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, _ = super().__getitem__(i)
        return x, torch.tensor([1, 0, 1])


class TaggedDigits(Dataset):
    """Digits with three labels at once (multilabel): odd, at least 5, a multiple of 3, as a
    0/1 tensor per sample."""

    classes: ClassVar[list[str]] = ["odd", "large", "triple"]

    def __init__(self) -> None:
        digits = load_digits()
        self.x = torch.tensor(digits.data, dtype=torch.float32)
        t = torch.tensor(digits.target)
        self.tags = torch.stack([t % 2 == 1, t >= 5, t % 3 == 0], dim=1).long()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.tags[i]
