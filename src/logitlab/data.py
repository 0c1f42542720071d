"""One DataModule for both heads: load a dataset, split it, standardise it, view it as a task."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch

from logitlab.errors import ConfigError

log = logging.getLogger(__name__)

TASKS = ("multiclass", "binary")


def load_digits(**_: Any) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 handwritten digits: 1,797 images, 64 features, 10 classes."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    return bunch.data.astype(np.float32), bunch.target.astype(np.int64)


def load_blobs(
    num_features: int, num_classes: int, seed: int, n_samples: int = 3000, cluster_std: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    """Isotropic Gaussian blobs from scikit-learn, one blob per class, seeded."""
    from sklearn.datasets import make_blobs

    x, y = make_blobs(
        n_samples=n_samples,
        n_features=num_features,
        centers=num_classes,
        cluster_std=cluster_std,
        random_state=seed,
    )
    return x.astype(np.float32), y.astype(np.int64)


SOURCES: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "digits": load_digits,
    "blobs": load_blobs,
}


class TensorBatches:
    """Whole batches sliced from tensors already in memory: no per-sample __getitem__, no collate.

    Shuffling draws a fresh permutation per epoch from a generator seeded with `seed + epoch`,
    so the order depends only on the seed and the epoch number (and survives a resume).
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        epoch_fn: Callable[[], int] | None = None,
    ) -> None:
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch_fn = epoch_fn or (lambda: 0)

    def __len__(self) -> int:
        return math.ceil(len(self.y) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, bs = len(self.y), self.batch_size
        if not self.shuffle:
            for start in range(0, n, bs):
                yield self.x[start : start + bs], self.y[start : start + bs]
            return
        generator = torch.Generator().manual_seed(self.seed + self.epoch_fn())
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, bs):
            index = order[start : start + bs]
            yield self.x[index], self.y[index]


def stratified_split(
    y: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> dict[str, np.ndarray]:
    """Split indices into train/val/test, stratified by label; depends only on the seed."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(y))
    rest, test = train_test_split(index, test_size=test_fraction, stratify=y, random_state=seed)
    val_of_rest = val_fraction / (1.0 - test_fraction)
    train, val = train_test_split(rest, test_size=val_of_rest, stratify=y[rest], random_state=seed)
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


class ClassificationDataModule(L.LightningDataModule):
    """A labelled feature matrix, split and standardised, seen as a multiclass or binary task.

    `multiclass` keeps labels 0..C-1. `binary` maps `positive_classes` to 1 and every other
    class to 0, after dropping the classes outside `keep_classes` (e.g. 3-vs-8) when it is set.
    """

    def __init__(
        self,
        source: str,
        task: str,
        num_features: int,
        num_classes: int,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        standardize: bool = True,
        positive_classes: Sequence[int] | None = None,
        keep_classes: Sequence[int] | None = None,
        class_names: Sequence[str] | None = None,
        seed: int = 0,
        data_dir: str = "data",
        source_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if task not in TASKS:
            raise ConfigError(f"unknown task '{task}'; use one of {', '.join(TASKS)}")
        if source not in SOURCES:
            raise ConfigError(
                f"data.source='{source}' is not a known dataset; use one of {', '.join(SOURCES)}"
            )
        self.source = source
        self.task = task
        self.num_features = num_features
        self.dataset_num_classes = num_classes
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or max(batch_size, 1024)
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.standardize = standardize
        self.positive_classes = list(positive_classes or [])
        self.keep_classes = list(keep_classes) if keep_classes else None
        self.class_names = list(class_names) if class_names else None
        self.seed = seed
        self.data_dir = data_dir
        self.source_kwargs = dict(source_kwargs or {})
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.split_index: dict[str, np.ndarray] = {}
        if task == "binary" and not self.positive_classes:
            raise ConfigError(
                "data.positive_classes is empty; the binary head needs the classes that count "
                "as 1, e.g. data.positive_classes=[8]"
            )
        if task == "multiclass" and self.keep_classes:
            raise ConfigError(
                "data.keep_classes applies to the binary head only; use model=binary or "
                "data.keep_classes=null"
            )

    @property
    def num_classes(self) -> int:
        """Classes the model predicts: the dataset's for multiclass, 2 for the binary view."""
        return 2 if self.task == "binary" else self.dataset_num_classes

    def label_names(self) -> list[str]:
        """A readable name for each class of the task view."""
        if self.task == "binary":
            positive = ",".join(str(c) for c in self.positive_classes)
            return [f"not {positive}", positive]
        if self.class_names:
            return self.class_names
        return [str(c) for c in range(self.dataset_num_classes)]

    def _load(self) -> tuple[np.ndarray, np.ndarray]:
        loader = SOURCES[self.source]
        x, y = loader(
            num_features=self.num_features,
            num_classes=self.dataset_num_classes,
            seed=self.seed,
            data_dir=self.data_dir,
            **self.source_kwargs,
        )
        if x.ndim != 2 or x.shape[1] != self.num_features:
            raise ConfigError(
                f"data.num_features={self.num_features} but dataset '{self.source}' has "
                f"{x.shape[1] if x.ndim == 2 else x.shape[1:]} features; set "
                f"data.num_features={x.shape[1] if x.ndim == 2 else '...'}"
            )
        present = np.unique(y)
        if present.min() < 0 or present.max() >= self.dataset_num_classes:
            raise ConfigError(
                f"data.num_classes={self.dataset_num_classes} but dataset '{self.source}' has "
                f"labels {present.min()}..{present.max()}; set "
                f"data.num_classes={int(present.max()) + 1}"
            )
        return x, y

    def _task_view(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.task == "multiclass":
            return x, y
        present = set(np.unique(y).tolist())
        for key, wanted in (
            ("positive_classes", self.positive_classes),
            ("keep_classes", self.keep_classes or []),
        ):
            missing = sorted(set(wanted) - present)
            if missing:
                raise ConfigError(
                    f"data.{key} has {missing}, absent from dataset '{self.source}' "
                    f"(its classes are {sorted(present)}); choose classes it has"
                )
        if self.keep_classes:
            if not set(self.positive_classes) < set(self.keep_classes):
                raise ConfigError(
                    f"data.positive_classes={self.positive_classes} must be a proper subset of "
                    f"data.keep_classes={self.keep_classes}, or no class is left as 0"
                )
            keep = np.isin(y, self.keep_classes)
            x, y = x[keep], y[keep]
        return x, np.isin(y, self.positive_classes).astype(np.int64)

    def setup(self, stage: str | None = None) -> None:
        """Load, view, split and standardise once; later calls are no-ops."""
        if self.splits:
            return
        x, y = self._task_view(*self._load())
        self.split_index = stratified_split(y, self.val_fraction, self.test_fraction, self.seed)
        x_t, y_t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), torch.from_numpy(y)
        train_x = x_t[self.split_index["train"]]
        if self.standardize:
            # Statistics from the training split only, so val/test stay unseen.
            mean = train_x.mean(dim=0)
            std = train_x.std(dim=0)
            std[std == 0] = 1.0  # constant pixels (digit borders) stay finite
            x_t = (x_t - mean) / std
        for name, index in self.split_index.items():
            self.splits[name] = (x_t[index].contiguous(), y_t[index].contiguous())
        counts = {
            name: np.bincount(yy.numpy(), minlength=self.num_classes).tolist()
            for name, (_, yy) in self.splits.items()
        }
        log.info("data=%s task=%s class counts per split: %s", self.source, self.task, counts)

    def _current_epoch(self) -> int:
        return self.trainer.current_epoch if self.trainer is not None else 0

    def train_dataloader(self) -> TensorBatches:
        """Shuffled training batches (in a fixed order while overfitting a few batches)."""
        overfitting = self.trainer is not None and self.trainer.overfit_batches > 0
        x, y = self.splits["train"]
        return TensorBatches(
            x,
            y,
            self.batch_size,
            shuffle=not overfitting,
            seed=self.seed,
            epoch_fn=self._current_epoch,
        )

    def val_dataloader(self) -> TensorBatches:
        """Validation batches in split order."""
        return TensorBatches(*self.splits["val"], self.eval_batch_size)

    def test_dataloader(self) -> TensorBatches:
        """Test batches in split order."""
        return TensorBatches(*self.splits["test"], self.eval_batch_size)

    def predict_dataloader(self) -> TensorBatches:
        """The test split, for predictions."""
        return self.test_dataloader()
