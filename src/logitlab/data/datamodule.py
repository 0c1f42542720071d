"""One DataModule for both heads, made of parts: the samples (in memory, or image files read by
workers), the task view, the split, the standardisation, the loaders and the augmentation."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from logitlab.data.augment import Augment
from logitlab.data.checks import check_label_shape, class_count, new_samples
from logitlab.data.datasets import DatasetSamples
from logitlab.data.fingerprint import fingerprint, label_counts
from logitlab.data.images import ImageSamples
from logitlab.data.loaders import Loaders, TensorBatches
from logitlab.data.memory import TensorSamples
from logitlab.data.settings import check_settings
from logitlab.data.sources import Loaded
from logitlab.data.splits import Split
from logitlab.data.standardize import Standardization
from logitlab.data.task import ClassNames, TaskView, balance_weights, check_training_labels

log = logging.getLogger(__name__)


def samples_of(
    settings: dict[str, Any], batch_size: int
) -> TensorSamples | ImageSamples | DatasetSamples:
    """The samples part the `data` settings name: image files, or a source held in memory."""
    s = settings
    if s["source"] == "dataset":  # a user's Dataset, read by DataLoader workers
        specs = {key: s[key] for key in ("dataset", "train", "val", "test")}
        return DatasetSamples(specs, s["class_names"], s["seed"], batch_size)
    if s["source"] == "image_folder":  # files decoded by DataLoader workers
        return ImageSamples(
            str(s["root"]), s["image_size"], s["channels"], s["stats_samples"], s["transforms"],
            s["seed"], batch_size, s["labels_file"], s["label_separator"], s["class_names"],
        )  # fmt: skip
    options = {**(s["source_kwargs"] or {}), **({"path": s["path"]} if s["path"] else {})}
    options.update({k: s[k] for k in ("target", "header", "label_separator") if s[k] is not None})
    if s["label_separator"] is not None and s["class_names"]:
        options["class_names"] = list(s["class_names"])  # the labels a set may name
    return TensorSamples(
        s["source"], s["num_features"], s["seed"], s["data_dir"], s["download"], options
    )


class ClassificationDataModule(ClassNames, L.LightningDataModule):
    """A labelled dataset, checked once, viewed as the head's task, split and standardised.

    Samples keep their shape (`input_shape`: (F,) for tables, (C, H, W) for images);
    standardisation is per feature for tables and per channel for images, measured on the
    training split only. `source=image_folder` reads `root` lazily, `source=dataset` a user's
    Dataset (data/datasets.py); every other source is held in memory (see data/sources.py).
    """

    def __init__(
        self,
        source: str,
        task: str,
        num_classes: int | None = None,
        num_features: int | None = None,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        folds: int | None = None,
        fold: int = 0,
        standardize: bool = True,
        positive_classes: Sequence[int | str] | None = None,
        keep_classes: Sequence[int | str] | None = None,
        class_names: Sequence[str] | None = None,
        balance: str | None = None,
        loader: str = "tensor",
        num_workers: int = 0,
        pin_memory: bool | None = None,
        seed: int = 0,
        data_dir: str = "data",
        download: bool = False,
        splits_file: str | None = None,
        stats_file: str | None = None,
        path: str | None = None,
        target: int | str | None = None,
        header: bool | None = None,
        label_separator: str | None = None,
        labels_file: str | None = None,
        source_kwargs: dict[str, Any] | None = None,
        augment: dict[str, Any] | None = None,
        root: str | None = None,
        image_size: list[int] | None = None,
        channels: int | None = None,
        stats_samples: int = 10_000,
        transforms: dict[str, Any] | None = None,
        dataset: Any = None,
        train: Any = None,
        val: Any = None,
        test: Any = None,
    ) -> None:
        settings = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        super().__init__()
        check_settings(settings, task)
        self.source, self.task = source, task
        self.eval_batch_size = eval_batch_size or max(batch_size, 1024)
        self.samples = samples_of(settings, self.eval_batch_size)
        loader = "tensor" if self.samples.in_memory and loader == "tensor" else "dataloader"
        self.view = TaskView(task, positive_classes, keep_classes)
        self.split = Split(val_fraction, test_fraction, seed, splits_file, folds, fold)
        self.augment = Augment(**(augment or {}))
        self.dataset_num_classes = num_classes
        self.class_names = list(class_names) if class_names else None
        self.loaders = Loaders(batch_size, self.eval_batch_size, num_workers, pin_memory, seed)
        self.batch_size, self.loader, self.seed = batch_size, loader, seed
        self.standardize, self.stats_file, self.balance = standardize, stats_file, balance
        self.feature_names: list[str] | None = None
        self.source_info: dict[str, Any] = {}
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.split_index: dict[str, np.ndarray] = {}
        self.input_shape: tuple[int, ...] = ()
        self.stats: Standardization | None = None
        self.pos_weight: float | list[float] | None = None
        self.class_weight: list[float] | None = None
        self.fingerprint: dict[str, Any] = {}
        self.rows: dict[str, torch.Tensor] = {}

    def prepare_data(self) -> None:
        """Download torchvision datasets when data.download=true (rank 0 only, by Lightning)."""
        self.samples.prepare()

    def setup(self, stage: str | None = None) -> None:
        """Read, check, view, split and standardise once; later calls are no-ops."""
        if self.splits:
            return
        loaded = self.samples.read(self.dataset_num_classes)
        self._adopt_classes(loaded)
        classes = int(self.dataset_num_classes or 0)
        parts = {
            part: self.samples.check(part, x, y, classes) for part, (x, y) in loaded.parts.items()
        }
        check_label_shape(self.task, next(iter(parts.values()))[1], self.source)
        self.fingerprint = fingerprint(parts, self.samples.digest, self.dataset_class_names())
        # each sample's row in its part's dataset, through the view, for predictions to name
        rows = torch.cat([torch.arange(len(y))[self.view.kept(y)] for _, y in parts.values()])
        parts = self.view.apply(parts, self.source)
        self.split_index, self.splits = self.split.apply(parts, self.samples.gather, self.source)
        self.rows = {name: rows[torch.from_numpy(i)] for name, i in self.split_index.items()}
        del parts, loaded  # the splits hold what training needs
        self.input_shape = self.samples.settle(self.splits["train"])
        self.augment.check_fits(self.input_shape, self.source)
        if self.standardize:
            if self.stats_file and Path(self.stats_file).is_file():
                self.stats = Standardization.read(self.stats_file, self.input_shape)
            else:
                self.stats = self.samples.statistics(self.splits["train"], self.loaders.num_workers)
            for features, _ in self.splits.values():
                self.samples.standardize_(features, self.stats)
        self.source_info.update(self.samples.record())
        self._summarise()

    def _adopt_classes(self, loaded: Loaded) -> None:
        """Class names and the class count from the data, where the config leaves them null."""
        if not self.class_names and loaded.class_names:
            self.class_names = list(loaded.class_names)
        self.feature_names = loaded.feature_names
        self.source_info = dict(loaded.extra)
        self.dataset_num_classes = class_count(
            loaded, self.dataset_num_classes, self.class_names, self.source
        )
        self.view.resolve(self.dataset_class_names(), self.source)

    def _summarise(self) -> None:
        """Log the class counts per split and fit the class weights data.balance asks for."""
        counts = {name: label_counts(y, self.num_classes) for name, (_, y) in self.splits.items()}
        train, samples = counts["train"], len(self.splits["train"][1])
        check_training_labels(self.task, train, samples, self.label_names(), self.source)
        log.info("data=%s task=%s class counts per split: %s", self.source, self.task, counts)
        self.pos_weight, self.class_weight = balance_weights(
            self.balance, self.task, train, samples
        )

    def transform(self, features: Any, name: str = "input") -> torch.Tensor:
        """New samples in the dataset's raw units, prepared as the training data was."""
        x = new_samples(features, self.input_shape, self.source, name)
        return self.stats(x) if self.stats else x

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Augment and mix training batches on their device (data.augment); never val or test."""
        x, y = self.augment.training_batch(
            batch[0], batch[1], self.trainer, self.num_classes, self.task, self.seed
        )
        if x.ndim == 4 and x.is_cuda:
            x = x.contiguous(memory_format=torch.channels_last)  # conv nets run faster so
        return x, y

    def run_data(self) -> dict[str, Any]:
        """What a run records about its data in data.json: classes, shape, standardisation."""
        record: dict[str, Any] = {
            "source": self.source,
            "task": self.task,
            "class_names": self.dataset_class_names(),
            "label_names": self.label_names(),
            "input_shape": list(self.input_shape),
            **(self.stats.record() if self.stats else {"mean": None, "std": None}),
        }
        if self.feature_names:
            record["feature_names"] = self.feature_names
        return {**record, **self.source_info, "fingerprint": self.fingerprint}

    def _batches(self, split: str, shuffle: bool, pad: bool) -> TensorBatches | DataLoader:
        x, y = self.splits[split]
        dataset = (
            None
            if self.loader == "tensor"
            else self.samples.dataset(x, y, split == "train", self.stats)
        )
        return self.loaders.batches(x, y, dataset, split, shuffle, pad, self.trainer)

    def sample_batches(self, split: str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """A split's (features, labels) batches, prepared as the model sees them (predict)."""
        x, y = self.splits[split]
        dataset = None if self.samples.in_memory else self.samples.dataset(x, y, False, self.stats)
        return iter(self.loaders.evaluation(x, y, dataset))

    def sample_rows(self, split: str) -> list[int]:
        """Each sample's row in its dataset (the whole file, or its own part), in split order."""
        return self.rows[split].tolist()

    def sample_names(self, split: str) -> list[str] | None:
        """Each sample's file of a split, where samples are files (image folders); else None."""
        return self.samples.names(self.splits[split][0])

    def train_dataloader(self) -> TensorBatches | DataLoader:
        """Shuffled training batches (a fixed order while overfitting a few batches)."""
        overfitting = getattr(self.trainer, "overfit_batches", 0) > 0
        return self._batches("train", shuffle=not overfitting, pad=True)

    def val_dataloader(self) -> TensorBatches | DataLoader:
        """Validation batches in split order (each rank a disjoint shard under DDP)."""
        return self._batches("val", shuffle=False, pad=False)

    def test_dataloader(self) -> TensorBatches | DataLoader:
        """Test batches in split order (each rank a disjoint shard under DDP)."""
        return self._batches("test", shuffle=False, pad=False)

    def predict_dataloader(self) -> TensorBatches | DataLoader:
        """The test split, for predictions."""
        return self.test_dataloader()
