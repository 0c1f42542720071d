"""Your own map-style `torch.utils.data.Dataset`, by `_target_`: one that logitlab splits
(`data.dataset`), or the splits given (`data.train`, `data.val`, optionally `data.test`).

A sample is `(x, y)`: `x` a tensor (or an array) of one fixed shape, (F,) for a table or
(C, H, W) / (H, W) for an image; `y` an integer class index or a string class name. Labels are
read from the dataset's `targets` (the torchvision convention) when it has them, else in one
pass over the samples; class names from its `classes`, data.class_names, or string labels.
Samples stay in the dataset: DataLoader workers read them as training asks for them.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, default_collate

from logitlab.data.checks import as_features
from logitlab.data.fingerprint import hash_tensor
from logitlab.data.sources import Loaded
from logitlab.data.standardize import Standardization
from logitlab.data.tables import canonical
from logitlab.errors import ConfigError

log = logging.getLogger(__name__)

KEYS = ("dataset", "train", "val", "test")


Label = int | str | tuple[int, ...]  # a class index or name, or a multilabel 0/1 row


def build_dataset(spec: Any, where: str) -> Dataset:
    """The Dataset a `_target_` node builds, refused in one line if it is not a map-style one."""
    from logitlab.config.instantiate import build_target

    target = spec.get("_target_") if isinstance(spec, Mapping) else None
    if target is None:
        raise ConfigError(f"{where} needs a _target_: the class of your Dataset, e.g. my_data.Rows")
    dataset = build_target(spec, where)
    if not isinstance(dataset, Dataset) or not hasattr(dataset, "__len__"):
        raise ConfigError(
            f"{where}._target_={target} built a {type(dataset).__name__}, not a map-style "
            "torch.utils.data.Dataset (with __len__ and __getitem__); give a Dataset class"
        )
    return dataset


def pair_of(item: Any, where: str) -> tuple[Any, Any]:
    """One dataset item as (x, y), or a one-line refusal."""
    if not isinstance(item, tuple | list) or len(item) != 2:
        kind = type(item).__name__
        raise ConfigError(f"{where}: a sample is a {kind}, not a pair (x, y); return (x, y)")
    return item[0], item[1]


def as_sample(item: Any, where: str) -> tuple[torch.Tensor, Any]:
    """(x as a float32 tensor, y) of one dataset item, or a one-line refusal."""
    x, y = pair_of(item, where)
    if not isinstance(x, torch.Tensor | np.ndarray):
        raise ConfigError(
            f"{where}: x is a {type(x).__name__}, not a tensor; give the dataset a transform "
            "that makes one (e.g. torchvision.transforms.v2.ToImage and ToDtype float32)"
        )
    x = torch.as_tensor(x)
    if x.dtype == torch.float32:  # the usual sample: nothing to convert
        return x, y
    if x.is_complex():
        raise ConfigError(f"{where}: x is {x.dtype}; give real numbers")
    return as_features(x) if x.dtype == torch.uint8 else x.to(torch.float32), y


def label_of(y: Any, where: str) -> Label:
    """One label as an int or a str, or a multi-hot vector (the multilabel head's) as a tuple;
    a float is refused."""
    if isinstance(y, torch.Tensor | np.ndarray | list | tuple) and np.ndim(y) == 1:
        cells = list(y) if isinstance(y, list | tuple) else np.asarray(y).tolist()
        if not all(not isinstance(c, bool) and c in (0, 1) for c in cells):
            raise ConfigError(
                f"{where}: a multilabel target {cells}; each label is 0 (absent) or 1 (present)"
            )
        return tuple(int(c) for c in cells)
    if isinstance(y, torch.Tensor | np.ndarray):
        if np.ndim(y) != 0:
            raise ConfigError(
                f"{where}: a label of shape {tuple(np.shape(y))}; give one class index (or name) "
                "per sample, or a 0/1 vector per sample for model=multilabel"
            )
        y = y.item()
    if isinstance(y, bool) or not isinstance(y, int | np.integer | str):
        raise ConfigError(
            f"{where}: a label {y!r} of type {type(y).__name__}; give an int class index or a "
            "str class name"
        )
    return y if isinstance(y, str) else int(y)


class DatasetItems(Dataset):
    """A split of a user's dataset: its items as float32 samples of one shape, with the split's
    labels (in the task's view). A DataLoader reads a batch in one call (`__getitems__`: the
    samples stacked, their labels gathered) and `collate` standardises it whole."""

    def __init__(
        self, source: ConcatDataset, ids: torch.Tensor, labels: torch.Tensor, shape: tuple, stats
    ) -> None:
        self.labels, self.shape, self.stats = labels, shape, stats
        self.rows = ids.tolist()  # ints: a sample's row without a tensor lookup
        self.source, self.start = part_of(source, self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        row = self.rows[index]
        return self.shaped(self.sample(row), row), self.labels[index]

    def __getitems__(self, indices: list[int]) -> list[torch.Tensor]:
        """A batch in one call: its samples stacked (in shared memory in a worker), each checked
        by the stacking, and their labels."""
        rows = [self.rows[i] for i in indices]
        samples = [self.sample(row) for row in rows]
        try:
            x = default_collate(samples)
        except RuntimeError:  # samples of different shapes: each one shaped, or refused
            x = default_collate([self.shaped(s, row) for s, row in zip(samples, rows, strict=True)])
        if x.ndim == len(self.shape):  # grayscale images (H, W) gain their channel
            x = x.unsqueeze(1)
        if x.shape[1:] != self.shape:  # every sample of one shape, not the first sample's
            self.shaped(samples[0], rows[0])
        return [x, self.labels[torch.tensor(indices)]]

    def sample(self, row: int) -> torch.Tensor:
        """One item's x as a float32 tensor (taken as it is when it is one), or a refusal."""
        item = self.source[row - self.start]
        x = item[0] if type(item) in (tuple, list) and len(item) == 2 else None
        if type(x) is torch.Tensor and x.dtype == torch.float32:
            return x
        return as_sample(item, f"data: sample {row}")[0]

    def shaped(self, x: torch.Tensor, row: int) -> torch.Tensor:
        """A sample in the first sample's shape (an (H, W) image gains its channel), or a
        refusal naming its row."""
        x = x.unsqueeze(0) if x.ndim == 2 else x
        if x.shape != self.shape:
            raise ConfigError(
                f"data: sample {row} has shape {tuple(x.shape)}, the first sample {self.shape}; "
                "give every sample one shape (resize images in the dataset's transform)"
            )
        return x

    def collate(self, batch: list[torch.Tensor]) -> list[torch.Tensor]:
        """The batch `__getitems__` read, standardised in one operation."""
        x, y = batch
        return [self.stats(x) if self.stats else x, y]


def part_of(concat: ConcatDataset, rows: list[int]) -> tuple[Dataset, int]:
    """The one dataset of `concat` holding every row and the id of its first row (a split of
    one dataset, or a split given as its own), so a read skips ConcatDataset's search; else
    `concat` and 0."""
    ends = concat.cumulative_sizes
    if rows:
        first, last = bisect.bisect_right(ends, min(rows)), bisect.bisect_right(ends, max(rows))
        if first == last:
            return concat.datasets[first], ends[first - 1] if first else 0
    return concat, 0


class DatasetSamples:
    """The samples of a user's Dataset (or datasets, one per split): ids into the datasets
    concatenated in order, labels in memory, items read by DataLoader workers."""

    in_memory = False

    def __init__(
        self, specs: dict[str, Any], class_names: list[str] | None, seed: int, batch_size: int
    ) -> None:
        self.source = "dataset"
        self.specs, self.given_names, self.seed, self.batch_size = (
            specs,
            class_names,
            seed,
            batch_size,
        )
        self.concat: ConcatDataset | None = None
        self.offsets: dict[str, int] = {}
        self.shape: tuple[int, ...] = ()

    def prepare(self) -> None:
        """Nothing to download: a Dataset fetches its own data when it is built."""

    def read(self, num_classes: int | None) -> Loaded:
        """Build each dataset and read its labels (from `targets`, or one pass)."""
        parts = ["all"] if self.specs.get("dataset") is not None else ["train", "val", "test"]
        keys = {"all": "dataset", "train": "train", "val": "val", "test": "test"}
        built: dict[str, Dataset] = {}
        labels: dict[str, list[Label]] = {}
        for part in parts:
            spec = self.specs.get(keys[part])
            if spec is None:
                continue  # no test split given: it is carved out of train, as for other data
            where = f"data.{keys[part]}"
            built[part] = build_dataset(spec, where)
            if len(built[part]) == 0:  # type: ignore[arg-type]
                raise ConfigError(f"{where} is empty (len 0); give it samples")
            labels[part] = self._labels(built[part], where)
        names = self._class_names(built, labels)
        lookup = {name: i for i, name in enumerate(names)} if names else {}
        loaded, start = {}, 0
        for part in built:
            self.offsets[part] = start
            unknown = {canonical(v) for v in labels[part] if isinstance(v, str)} - set(lookup)
            if unknown:
                raise ConfigError(
                    f"data.{keys[part]}: label '{sorted(unknown)[0]}' is not one of the class "
                    f"names ({', '.join((names or [])[:6])}); fix the labels or data.class_names"
                )
            values = [lookup[canonical(v)] if isinstance(v, str) else v for v in labels[part]]
            ids = torch.arange(start, start + len(values))
            loaded[part] = (ids, torch.tensor(values, dtype=torch.int64))
            start += len(values)
        self.concat = ConcatDataset(list(built.values()))
        return Loaded(loaded, class_names=names, extra={"datasets": self._described()})

    def _labels(self, dataset: Dataset, where: str) -> list[Label]:
        targets = getattr(dataset, "targets", None)
        if targets is not None and len(targets) == len(dataset):  # type: ignore[arg-type]
            values = targets.tolist() if hasattr(targets, "tolist") else list(targets)
            return [label_of(v, f"{where}.targets[{i}]") for i, v in enumerate(values)]
        log.info("%s has no targets attribute: reading its labels in one pass", where)
        labels = []
        for i in range(len(dataset)):  # type: ignore[arg-type]
            _, y = pair_of(dataset[i], f"{where}: sample {i}")
            labels.append(label_of(y, f"{where}: sample {i}"))
        return labels

    def _class_names(
        self, built: dict[str, Dataset], labels: dict[str, list[Label]]
    ) -> list[str] | None:
        if self.given_names:
            return list(self.given_names)
        classes = getattr(next(iter(built.values())), "classes", None)
        if classes is not None and all(isinstance(c, str) for c in classes):
            return list(classes)
        strings = {canonical(v) for values in labels.values() for v in values if isinstance(v, str)}
        if strings and any(isinstance(v, int) for values in labels.values() for v in values):
            raise ConfigError("data: the labels mix class indices and class names; use one kind")
        return sorted(strings) if strings else None

    def _described(self) -> dict[str, Any]:
        return {part: str(self.specs.get(key)) for part, key in zip(
            ("all", "train", "val", "test"), KEYS, strict=True) if self.specs.get(key)}  # fmt: skip

    def check(
        self, part: str, x: torch.Tensor, y: torch.Tensor, num_classes: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Labels in [0, num_classes): the same check every source passes."""
        from logitlab.data.checks import validate_part

        validate_part(self.source, part, torch.zeros(len(y), 1), y, num_classes)
        return x, y

    def digest(self, digest: Any, x: torch.Tensor) -> None:
        """The datasets' class paths and arguments, and the ids (labels are hashed beside)."""
        digest.update(repr(sorted(self._described().items())).encode())
        hash_tensor(digest, x)

    def gather(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """A split's ids."""
        return x.index_select(0, index)

    def settle(self, train: tuple[torch.Tensor, torch.Tensor]) -> tuple[int, ...]:
        """The first training sample's shape: (F,) or (C, H, W)."""
        assert self.concat is not None
        row = int(train[0][0])
        x, _ = as_sample(self.concat[row], f"data: sample {row}")
        if x.ndim not in (1, 2, 3):
            raise ConfigError(
                f"data: samples of shape {tuple(x.shape)}; give tables (F,) or images (C, H, W)"
            )
        self.shape = tuple((x.unsqueeze(0) if x.ndim == 2 else x).shape)
        return self.shape

    def statistics(self, train: tuple[torch.Tensor, torch.Tensor], workers: int) -> Standardization:
        """Mean and std of the training samples, per feature or per channel, in one pass."""
        assert self.concat is not None
        items = DatasetItems(self.concat, *train, self.shape, None)
        loader = DataLoader(items, self.batch_size, num_workers=workers, collate_fn=items.collate)
        return Standardization.fit_stream((x for x, _ in loader), self.shape)

    def standardize_(self, x: torch.Tensor, stats: Standardization) -> None:
        """Nothing here: each batch is standardised when it is read (DatasetItems.collate)."""

    def dataset(
        self, x: torch.Tensor, y: torch.Tensor, train: bool, stats: Standardization | None
    ) -> Dataset:
        """A split's samples, read from the user's dataset when asked for."""
        assert self.concat is not None
        return DatasetItems(self.concat, x, y, self.shape, stats)

    def names(self, x: torch.Tensor) -> list[str] | None:
        """Samples are a dataset's items, not files: no names."""
        return None

    def record(self) -> dict[str, Any]:
        """What data.json adds: the datasets as configured."""
        return {"datasets": self._described()}
