"""One DataModule for both heads: load, validate once, view as a task, split, standardise, serve."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler, TensorDataset

from logitlab.data.augment import Augment
from logitlab.data.sources import MAX_CLASSES, SOURCES, Loaded
from logitlab.errors import ConfigError
from logitlab.run.files import atomic_path, write_json

log = logging.getLogger(__name__)

TASKS = ("multiclass", "binary")
USER_DATA = ("npz", "csv", "image_folder")  # sources whose class count comes from the user's data
LOADERS = ("tensor", "dataloader")


class EpochOrder(Sampler[int]):
    """Sample indices in a seeded per-epoch order, optionally one DDP rank's shard of it.

    The order is `randperm(n)` from a generator seeded with `seed + epoch` (or 0..n-1 without
    shuffling), so it depends only on the seed and the epoch: a resumed run sees the same
    batches. Lightning calls `set_epoch` at the start of every training epoch. With
    `world_size > 1`, rank r takes every world_size-th index from r; `pad` repeats the head of
    the order so every rank gets as many (as DistributedSampler does, for training).
    `skip` (if given) says how many of this epoch's indices a resumed run already trained on;
    iteration starts after them while `len` stays the epoch's, as Lightning counts it.
    """

    def __init__(
        self,
        n: int,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pad: bool = False,
        skip: Callable[[], int] | None = None,
    ) -> None:
        self.n, self.shuffle, self.seed = n, shuffle, seed
        self.rank, self.world_size, self.pad = rank, world_size, pad
        self.skip = skip
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order the next iteration yields."""
        self.epoch = epoch

    def indices(self) -> torch.Tensor:
        """This rank's indices for the current epoch, as a tensor."""
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.n, generator=generator)
        else:
            order = torch.arange(self.n)
        if self.world_size == 1:
            return order
        if self.pad:
            total = math.ceil(self.n / self.world_size) * self.world_size
            order = torch.cat([order, order[: total - self.n]])
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int]:
        first = self.skip() if self.skip else 0
        return iter(self.indices()[first:].tolist())

    def __len__(self) -> int:
        if self.world_size == 1:
            return self.n
        if self.pad:
            return math.ceil(self.n / self.world_size)
        return len(range(self.rank, self.n, self.world_size))


class TensorBatches:
    """Whole batches indexed out of tensors already in memory.

    No per-sample __getitem__, no collate, no worker processes: one index_select per batch.
    It yields the same batches as a DataLoader over a TensorDataset with the same `sampler`.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        sampler: EpochOrder,
        batches_done: Callable[[], int] | None = None,
    ) -> None:
        self.x, self.y = x, y
        self.batch_size = batch_size
        # How many batches of this epoch a resumed run already trained on (Lightning's count).
        self.batches_done = batches_done or (lambda: 0)
        # Lightning reads these like a DataLoader's: it calls sampler.set_epoch every epoch.
        self.sampler = sampler
        self.batch_sampler = None

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)

    def state_dict(self) -> dict[str, int]:
        """Makes the loader resumable mid-epoch for Lightning: the epoch is all it needs."""
        return {"epoch": self.sampler.epoch}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        """The epoch comes back through set_epoch and the position through `batches_done`."""

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.sampler.indices()
        contiguous = not self.sampler.shuffle and self.sampler.world_size == 1
        first = self.batches_done() * self.batch_size  # skip what a resumed run already saw
        for start in range(first, len(order), self.batch_size):
            if contiguous:  # views, no copy
                yield (
                    self.x[start : start + self.batch_size],
                    self.y[start : start + self.batch_size],
                )
            else:  # index_select: about 3x faster than x[index] for whole rows
                index = order[start : start + self.batch_size]
                yield self.x.index_select(0, index), self.y.index_select(0, index)


def _examples(values: np.ndarray, limit: int = 3) -> str:
    unique = np.unique(values)
    shown = ", ".join(f"{v:g}" for v in unique[:limit])
    return shown + (", ..." if len(unique) > limit else "")


def validate_part(
    dataset: str, part: str, x: Any, y: Any, num_classes: int, keep_uint8: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check labels and features of one part once; return (features, int64 [N]) tensors.

    Features keep each sample's shape: (N, F) for a table, (N, C, H, W) for images ((N, H, W)
    grayscale images gain their channel axis). uint8 images are scaled to [0, 1] here, once
    for the whole set, not per sample; with `keep_uint8` they stay uint8 (a quarter of the
    memory) for `as_features` to scale later.
    """
    where = f"data={dataset}, split '{part}'"
    if isinstance(x, torch.Tensor):
        if x.is_complex():
            raise ConfigError(f"{where}: complex features; give real numbers (int or float)")
        x_t = x
    else:
        x_np = np.asarray(x)
        if x_np.dtype.kind not in "biuf":
            raise ConfigError(
                f"{where}: features of type {x_np.dtype}; give real numbers (int or float)"
            )
        x_t = torch.from_numpy(x_np)
    y_np = y.numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if len(y_np) == 0:
        raise ConfigError(f"{where} is empty; check the data files or the split fractions")
    if len(x_t) != len(y_np):
        raise ConfigError(f"{where}: {len(x_t)} feature rows but {len(y_np)} labels; fix the data")
    if y_np.ndim != 1:
        raise ConfigError(
            f"{where}: labels must be one class index per sample, got shape {y_np.shape}"
        )
    if not np.issubdtype(y_np.dtype, np.integer):
        if not np.issubdtype(y_np.dtype, np.floating):
            raise ConfigError(f"{where}: labels of type {y_np.dtype}; use integer class indices")
        fractional = y_np[~np.isfinite(y_np) | (y_np != np.round(y_np))]
        if len(fractional):
            raise ConfigError(
                f"{where}: labels must be integer class indices, found {_examples(fractional)} "
                f"({len(fractional)} samples); map them to 0..{num_classes - 1}"
            )
    bad = y_np[(y_np < 0) | (y_np >= num_classes)]
    if len(bad):
        fix = (
            "class indices start at 0; fix the labels"
            if bad.min() < 0
            else f"fix the labels or set data.num_classes={int(bad.max()) + 1}"
        )
        raise ConfigError(
            f"{where}: labels must lie in [0, {num_classes}) (data.num_classes={num_classes}), "
            f"found {_examples(bad)} ({len(bad)} samples); {fix}"
        )
    if x_t.ndim == 1:
        x_t = x_t.reshape(len(x_t), 1)
    elif x_t.ndim == 3:
        x_t = x_t.unsqueeze(1)  # grayscale images: one channel
    elif x_t.ndim > 4:
        raise ConfigError(
            f"{where}: samples of shape {tuple(x_t.shape[1:])}; give tables (N, F) or images "
            "(N, H, W) / (N, C, H, W)"
        )
    if x_t.dtype == torch.uint8:
        x_t = x_t if keep_uint8 else as_features(x_t)
    elif x_t.dtype.is_floating_point:
        x_t = x_t.to(torch.float32)
        flat = x_t.reshape(len(x_t), -1)
        finite = torch.isfinite(flat)
        if not finite.all():
            rows, cols = torch.nonzero(~finite, as_tuple=True)
            shown = ", ".join(
                f"x[{r}, {c}]={flat[r, c].item()}"
                for r, c in zip(rows[:3].tolist(), cols[:3].tolist(), strict=True)
            )
            raise ConfigError(
                f"{where}: {len(rows)} features are NaN or inf, e.g. {shown}; clean the data"
            )
    else:
        x_t = x_t.to(torch.float32)
    return x_t, torch.from_numpy(y_np.astype(np.int64))


def as_features(x: torch.Tensor) -> torch.Tensor:
    """float32 features: uint8 pixels scaled to [0, 1]; anything else as it is."""
    return x.to(torch.float32).div_(255.0) if x.dtype == torch.uint8 else x


def stratified_split(
    y: np.ndarray, val_fraction: float, test_fraction: float, seed: int, dataset: str = "data"
) -> dict[str, np.ndarray]:
    """Split indices into train/val/test, stratified by label; depends only on the seed.

    With `test_fraction=0` the test split is left empty (the caller supplies an official one).
    """
    from sklearn.model_selection import train_test_split

    index = np.arange(len(y))
    try:
        test = np.array([], dtype=np.int64)
        rest = index
        if test_fraction > 0:
            rest, test = train_test_split(
                index, test_size=test_fraction, stratify=y, random_state=seed
            )
        val_of_rest = val_fraction / (1.0 - test_fraction)
        train, val = train_test_split(
            rest, test_size=val_of_rest, stratify=y[rest], random_state=seed
        )
    except ValueError as error:
        raise ConfigError(
            f"data={dataset}: cannot split {len(y)} samples with data.val_fraction={val_fraction} "
            f"and data.test_fraction={test_fraction} ({error}); use more data or other fractions"
        ) from None
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


class ClassificationDataModule(L.LightningDataModule):
    """A labelled feature matrix, validated, split and standardised, as a multiclass or binary task.

    `multiclass` keeps labels 0..C-1. `binary` maps `positive_classes` to 1 and every other
    class to 0, after dropping the classes outside `keep_classes` (e.g. 3-vs-8) when it is set.
    Samples keep their shape (`input_shape`: (F,) for tables, (C, H, W) for images);
    standardisation is per feature for tables and per channel for images.
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
        standardize: bool = True,
        positive_classes: Sequence[int | str] | None = None,
        keep_classes: Sequence[int | str] | None = None,
        class_names: Sequence[str] | None = None,
        balance: str | None = None,
        loader: str = "tensor",
        num_workers: int = 0,
        seed: int = 0,
        data_dir: str = "data",
        download: bool = False,
        splits_file: str | None = None,
        stats_file: str | None = None,
        path: str | None = None,
        target: int | str | None = None,
        source_kwargs: dict[str, Any] | None = None,
        augment: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if task not in TASKS:
            raise ConfigError(f"unknown task '{task}'; use one of {', '.join(TASKS)}")
        if source not in SOURCES and type(self) is ClassificationDataModule:
            raise ConfigError(
                f"data.source='{source}' is not a known dataset; use one of {', '.join(SOURCES)}"
            )
        if loader not in LOADERS:
            raise ConfigError(
                f"data.loader='{loader}' is not known; use one of {', '.join(LOADERS)}"
            )
        if not (
            0 < val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1
        ):
            raise ConfigError(
                f"data.val_fraction={val_fraction} and data.test_fraction={test_fraction} leave a "
                "split empty; each must be in (0, 1) and their sum below 1"
            )
        if batch_size <= 0:
            raise ConfigError(f"data.batch_size={batch_size} must be positive")
        if num_classes is not None and not 2 <= num_classes <= MAX_CLASSES:
            raise ConfigError(
                f"data.num_classes={num_classes} must be in [2, {MAX_CLASSES}] (null: counted "
                "from the data)"
            )
        if task == "binary" and not positive_classes:
            raise ConfigError(
                "data.positive_classes is empty; the binary head needs the classes that count "
                "as 1, e.g. data.positive_classes=[8]"
            )
        if task == "multiclass" and keep_classes:
            raise ConfigError(
                "data.keep_classes applies to the binary head only; use model=binary or "
                "data.keep_classes=null"
            )
        fits = {"binary": "pos_weight", "multiclass": "class_weight"}[task]
        if balance not in (None, fits):
            raise ConfigError(
                f"data.balance={balance} is not available for the {task} head; "
                f"use data.balance={fits} (or null) with model={task}"
            )
        self.source, self.task = source, task
        self.num_features = num_features
        self.dataset_num_classes = num_classes
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or max(batch_size, 1024)
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.standardize = standardize
        self.positive_classes = list(positive_classes or [])
        self.keep_classes = list(keep_classes) if keep_classes else None
        self.class_names = list(class_names) if class_names else None
        self.balance = balance
        self.loader, self.num_workers = loader, num_workers
        self.seed = seed
        self.data_dir, self.download = data_dir, download
        self.splits_file, self.stats_file = splits_file, stats_file
        self.source_kwargs = dict(source_kwargs or {})
        for key, value in (("path", path), ("target", target)):
            if value is not None:
                self.source_kwargs[key] = value
        self.feature_names: list[str] | None = None
        self.source_info: dict[str, Any] = {}
        self.augment = Augment(**(augment or {}))
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.split_index: dict[str, np.ndarray] = {}
        self.pos_weight: float | None = None
        self.class_weight: list[float] | None = None
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None

    @property
    def num_classes(self) -> int:
        """Classes the model predicts: the dataset's for multiclass, 2 for the binary view."""
        return 2 if self.task == "binary" else cast(int, self.dataset_num_classes)

    def dataset_class_names(self) -> list[str]:
        """The dataset's class names (its own, data.class_names, or the class indices)."""
        if self.class_names:
            return self.class_names
        return [str(c) for c in range(self.dataset_num_classes or 0)]

    def label_names(self) -> list[str]:
        """A readable name for each class of the task view."""
        if self.task == "binary":
            names = self.dataset_class_names()
            positive = ",".join(
                names[c] if isinstance(c, int) and c < len(names) else str(c)
                for c in self.positive_classes
            )
            return [f"not {positive}", positive]
        return self.dataset_class_names()

    def prepare_data(self) -> None:
        """Download torchvision datasets when data.download=true (rank 0 only, by Lightning)."""
        if self.download:
            SOURCES[self.source](data_dir=self.data_dir, download=True, seed=self.seed)

    def _read(self) -> Loaded:
        """The source's parts as they are on disk (image folders override this)."""
        return SOURCES[self.source](
            num_features=self.num_features,
            num_classes=self.dataset_num_classes,
            seed=self.seed,
            data_dir=self.data_dir,
            download=False,
            **self.source_kwargs,
        )

    def _adopt_classes(self, loaded: Loaded) -> None:
        """Class names and the class count from the data, where the config leaves them null."""
        if not self.class_names and loaded.class_names:
            self.class_names = list(loaded.class_names)
        self.feature_names = loaded.feature_names
        self.source_info = dict(loaded.extra)
        if self.class_names:
            count = len(self.class_names)
        else:
            labels = [np.asarray(y) for _, y in loaded.parts.values()]
            finite = [y[np.isfinite(y)] for y in labels if y.size and y.dtype.kind in "iuf"]
            count = int(max(y.max() for y in finite if y.size)) + 1 if finite else 0
        given = self.dataset_num_classes
        if given is None:
            if not 2 <= count <= MAX_CLASSES:
                raise ConfigError(
                    f"data={self.source} has {count} class(es); a classifier needs 2 to "
                    f"{MAX_CLASSES} (check the labels, or set data.num_classes)"
                )
            self.dataset_num_classes = count
            log.info("data=%s: %d classes, counted from the data", self.source, count)
        elif self.source in USER_DATA and count and given > count:  # fewer: validate_part says
            raise ConfigError(
                f"data.num_classes={given} but data={self.source} has {count} classes "
                f"({self._class_range(count)}); set data.num_classes={count}, or null to count them"
            )
        self._resolve_class_names()

    def _class_range(self, count: int) -> str:
        names = self.class_names or [str(c) for c in range(count)]
        return ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")

    def _resolve_class_names(self) -> None:
        """positive_classes / keep_classes given by class name become class indices."""
        names = self.dataset_class_names()
        for key in ("positive_classes", "keep_classes"):
            wanted = getattr(self, key)
            if not wanted:
                continue
            resolved = []
            for c in wanted:
                if isinstance(c, str) and c in names:
                    resolved.append(names.index(c))
                elif isinstance(c, str) and not c.lstrip("-").isdigit():
                    raise ConfigError(
                        f"data.{key} names class '{c}', which data={self.source} does not have "
                        f"(its classes are {', '.join(names)}); use one of them or its index"
                    )
                else:
                    resolved.append(int(c))
            setattr(self, key, resolved)

    def _load(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        loaded = self._read()
        self._adopt_classes(loaded)
        parts = {}
        for part, (x, y) in loaded.parts.items():
            x_t, y_t = validate_part(
                self.source, part, x, y, cast(int, self.dataset_num_classes), keep_uint8=True
            )
            features = math.prod(x_t.shape[1:])
            if self.num_features is not None and features != self.num_features:
                raise ConfigError(
                    f"data.num_features={self.num_features} but dataset '{self.source}' has "
                    f"{features} features per sample; set data.num_features={features} (or null)"
                )
            parts[part] = (x_t, y_t)
        return parts

    def _task_view(
        self, parts: dict[str, tuple[torch.Tensor, torch.Tensor]]
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        if self.task == "multiclass":
            return parts
        present = set(torch.cat([y for _, y in parts.values()]).unique().tolist())
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
        if self.keep_classes and not set(self.positive_classes) < set(self.keep_classes):
            raise ConfigError(
                f"data.positive_classes={self.positive_classes} must be a proper subset of "
                f"data.keep_classes={self.keep_classes}, or no class is left as 0"
            )
        positive = torch.tensor(self.positive_classes)
        viewed = {}
        for part, (x, y) in parts.items():
            if self.keep_classes:
                keep = torch.isin(y, torch.tensor(self.keep_classes))
                x, y = x[keep], y[keep]
            viewed[part] = (x, torch.isin(y, positive).long())
        return viewed

    def _split(
        self, parts: dict[str, tuple[torch.Tensor, torch.Tensor]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Concatenate the parts and fill self.split_index (computed, or read from splits_file)."""
        if len(parts) == 1:  # one part: no concatenated copy
            ((x, y),) = parts.values()
        else:
            x = torch.cat([x for x, _ in parts.values()])
            y = torch.cat([y for _, y in parts.values()])
        if self.splits_file:
            self.split_index = load_splits(self.splits_file, len(y))
        elif "val" in parts and "test" in parts:  # the data's own three splits
            sizes = np.cumsum([0, *(len(parts[p][1]) for p in ("train", "val", "test"))])
            self.split_index = {
                p: np.arange(sizes[i], sizes[i + 1]) for i, p in enumerate(("train", "val", "test"))
            }
        elif "test" in parts:  # an official test split: val comes out of the official train
            n_train = len(parts["train"][1])
            split = stratified_split(
                parts["train"][1].numpy(), self.val_fraction, 0.0, self.seed, self.source
            )
            split["test"] = np.arange(n_train, len(y))
            self.split_index = split
        else:
            self.split_index = stratified_split(
                y.numpy(), self.val_fraction, self.test_fraction, self.seed, self.source
            )
        for name, index in self.split_index.items():
            if len(index) == 0:
                raise ConfigError(
                    f"data={self.source}: split '{name}' is empty; raise data.val_fraction / "
                    "data.test_fraction or use more data"
                )
        return x, y

    def setup(self, stage: str | None = None) -> None:
        """Load, validate, view, split and standardise once; later calls are no-ops.

        Images stay uint8 until each split has been gathered, so the loaded set and its float32
        splits are never all in memory at once; standardisation then works in place.
        """
        if self.splits:
            return
        x, y = self._split(self._task_view(self._load()))
        for name, index in self.split_index.items():
            index_t = torch.from_numpy(index)
            features = as_features(x.index_select(0, index_t))
            self.splits[name] = (features, y.index_select(0, index_t))
        del x, y
        if self.standardize:
            if not self._read_stats():
                # Statistics from the training split only, so val/test stay unseen: per feature
                # for a table, per channel for images (one mean and std per colour plane).
                train_x = self.splits["train"][0]
                dims = (0, 2, 3) if train_x.ndim == 4 else (0,)
                self.mean = train_x.mean(dim=dims, keepdim=True)[0]
                self.std = train_x.std(dim=dims, keepdim=True)[0]
                self.std[self.std == 0] = 1.0  # constant features stay finite
            mean, std = cast(torch.Tensor, self.mean), cast(torch.Tensor, self.std)
            for features, _ in self.splits.values():
                features.sub_(mean).div_(std)
        self._summarise()

    def _read_stats(self) -> bool:
        """Take mean and std from the run's data.json (eval, predict); False if there is none."""
        import json

        if not self.stats_file or not Path(self.stats_file).is_file():
            return False
        try:
            saved = json.loads(Path(self.stats_file).read_text())
            mean, std = torch.tensor(saved["mean"]), torch.tensor(saved["std"])
        except (ValueError, KeyError, TypeError):
            raise ConfigError(
                f"{self.stats_file} is not readable JSON with mean and std; delete it to "
                "measure them again from the training split"
            ) from None
        if mean.shape != std.shape or mean.numel() != self._stats_size():
            raise ConfigError(
                f"{self.stats_file} holds {mean.numel()} means, but the data has "
                f"{self._stats_size()} features or channels; it belongs to other data"
            )
        shape = (-1, 1, 1) if len(self.input_shape) == 3 else (-1,)
        self.mean, self.std = mean.reshape(shape).float(), std.reshape(shape).float()
        return True

    def _stats_size(self) -> int:
        shape = self.input_shape
        return shape[0] if len(shape) == 3 else math.prod(shape)

    def _summarise(self) -> None:
        """Log the class counts per split and fit the class weights data.balance asks for."""
        counts = {
            name: torch.bincount(yy, minlength=self.num_classes).tolist()
            for name, (_, yy) in self.splits.items()
        }
        present = sum(c > 0 for c in counts["train"])
        if present < 2:
            raise ConfigError(
                f"data={self.source}: the training split holds one class only "
                f"({self.label_names()[counts['train'].index(max(counts['train']))]}); a "
                "classifier needs two or more (check the labels, positive_classes, keep_classes)"
            )
        log.info("data=%s task=%s class counts per split: %s", self.source, self.task, counts)
        if self.balance == "pos_weight":
            negatives, positives = counts["train"]
            self.pos_weight = negatives / positives
            log.info(
                "data.balance=pos_weight: pos_weight=%.4f (train negatives/positives)",
                self.pos_weight,
            )
        if self.balance == "class_weight":  # n / (C * n_c): 1 for every class when balanced
            train = counts["train"]
            self.class_weight = [sum(train) / (len(train) * max(c, 1)) for c in train]
            log.info("data.balance=class_weight: %s", [round(w, 4) for w in self.class_weight])

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One sample's shape: (F,) for a table, (C, H, W) for images (after setup)."""
        return tuple(self.splits["train"][0].shape[1:])

    def transform(self, features: Any, name: str = "input") -> torch.Tensor:
        """New samples in the dataset's raw units, prepared as the training data was."""
        # validate_part scales uint8 pixels (image files) to [0, 1], as the training data was
        x, _ = validate_part(self.source, name, features, np.zeros(len(features), np.int64), 1)
        shape = self.input_shape
        if tuple(x.shape[1:]) != shape:
            if math.prod(x.shape[1:]) != math.prod(shape):
                raise ConfigError(
                    f"{name} has {math.prod(x.shape[1:])} features per sample but the model "
                    f"takes {math.prod(shape)} (data={self.source}, samples of shape {shape}); "
                    f"give {math.prod(shape)} columns"
                )
            x = x.reshape(len(x), *shape)  # flattened images
        if self.mean is None or self.std is None:
            return x
        return (x - self.mean) / self.std

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Augment training image batches on their device (data.augment); never val or test."""
        x, y = batch
        trainer = self.trainer
        if trainer is not None and trainer.training and self.augment.active and x.ndim == 4:
            # the same draws for the same step, so a resumed run sees what an unbroken one would
            seed = (self.seed * 1_000_003 + trainer.global_step) * 101 + trainer.global_rank
            x = self.augment(x, seed)
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
            "mean": self.mean.flatten().tolist() if self.mean is not None else None,
            "std": self.std.flatten().tolist() if self.std is not None else None,
        }
        if self.feature_names:
            record["feature_names"] = self.feature_names
        return {**record, **self.source_info}

    def save_run_data(self, path: Path) -> Path:
        """Write data.json: the class-index mapping and the statistics eval and predict reuse."""
        return write_json(path, self.run_data())

    def save_splits(self, path: Path) -> Path:
        """Write the split indices (train/val/test) so eval and predict reuse exactly these."""
        path.parent.mkdir(parents=True, exist_ok=True)
        n = sum(len(index) for index in self.split_index.values())
        with atomic_path(path) as temporary, temporary.open("wb") as handle:
            arrays: dict[str, Any] = {"n": np.array(n), **self.split_index}
            np.savez_compressed(handle, **arrays)
        return path

    def _rank(self) -> tuple[int, int]:
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    def _train_batches_done(self) -> int:
        """Batches of the current epoch already trained on: > 0 only in a run resumed mid-epoch.

        Read from the trainer's public counters: every epoch takes ceil(batches / accumulation)
        optimizer steps, so the steps beyond the finished epochs are this epoch's.
        """
        trainer = self.trainer
        if trainer is None or not isinstance(trainer.num_training_batches, int):
            return 0
        per_epoch, accumulate = trainer.num_training_batches, trainer.accumulate_grad_batches
        steps = trainer.global_step - trainer.current_epoch * math.ceil(per_epoch / accumulate)
        return min(max(steps * accumulate, 0), per_epoch)

    def _sampler(self, split: str, shuffle: bool, pad: bool) -> tuple[EpochOrder, int]:
        """The split's sampler (skipping what a resumed run trained on) and its batch size."""
        rank, world = self._rank()
        batch_size = self.batch_size if split == "train" else self.eval_batch_size
        skip = None
        if split == "train" and self.loader != "tensor":  # TensorBatches skips by itself

            def skip() -> int:
                return self._train_batches_done() * batch_size

        n = len(self.splits[split][1])
        return EpochOrder(n, shuffle, self.seed, rank, world, pad, skip), batch_size

    def _batches(self, split: str, shuffle: bool, pad: bool) -> TensorBatches | DataLoader:
        x, y = self.splits[split]
        sampler, batch_size = self._sampler(split, shuffle, pad)
        if self.loader == "tensor":
            done = self._train_batches_done if split == "train" else None
            return TensorBatches(x, y, batch_size, sampler, done)
        return DataLoader(
            TensorDataset(x, y),
            batch_size=batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def sample_batches(self, split: str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """A split's (features, labels) batches, prepared as the model sees them (predict)."""
        x, y = self.splits[split]
        yield from zip(x.split(4096), y.split(4096), strict=True)

    def sample_names(self, split: str) -> list[str] | None:
        """Each sample's file of a split, where samples are files (image folders); else None."""
        return None

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


def load_splits(path: str | Path, n: int) -> dict[str, np.ndarray]:
    """Split indices saved by `save_splits`, checked against the dataset size `n`."""
    import zipfile

    if Path(path).is_dir():
        raise ConfigError(f"data.splits_file={path} is a folder; give a splits.npz file")
    if not Path(path).is_file():
        raise ConfigError(f"data.splits_file={path} does not exist; give a run's splits.npz")
    try:
        with np.load(path, allow_pickle=False) as saved:
            index = {name: np.asarray(saved[name]) for name in ("train", "val", "test")}
            saved_n = int(saved["n"])
    except KeyError as error:
        raise ConfigError(
            f"data.splits_file={path} lacks {error}; give a splits.npz written by a run"
        ) from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        raise ConfigError(
            f"data.splits_file={path} is not a readable .npz file (truncated, or not written "
            "by np.savez); give a run's splits.npz or remove the setting"
        ) from None
    if saved_n != n:
        raise ConfigError(
            f"data.splits_file={path} indexes {saved_n} samples but the dataset has {n}; "
            "it belongs to other data"
        )
    for name, part in index.items():
        if part.size and (not np.issubdtype(part.dtype, np.integer) or part.ndim != 1):
            raise ConfigError(f"data.splits_file={path}: '{name}' is not a list of indices")
        if part.size and (part.min() < 0 or part.max() >= n):
            raise ConfigError(
                f"data.splits_file={path}: '{name}' indexes samples up to {int(part.max())} "
                f"(from {int(part.min())}), but the dataset has {n}; it belongs to other data"
            )
    return index
