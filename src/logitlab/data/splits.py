"""Train/val/test split indices: stratified and seeded, or the data's own, saved and reused."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from logitlab.errors import ConfigError
from logitlab.run.files import atomic_path

SPLITS = ("train", "val", "test")


def strata(y: np.ndarray, fraction: float) -> np.ndarray:
    """What a split stratifies by: the class, or for multilabel 0/1 rows the label set, with
    the sets too rare to reach every split (fewer than 2 / fraction samples) pooled as one."""
    if y.ndim == 1:
        return y
    _, key, counts = np.unique(y, axis=0, return_inverse=True, return_counts=True)
    key = key.reshape(-1)
    rare = counts[key] < int(np.ceil(2 / fraction))
    key = np.where(rare, -1, key)
    if rare.sum() == 1:  # a pool of one cannot be split: it joins the largest set
        key[rare] = np.bincount(key[~rare]).argmax()
    return key


def stratified_split(
    y: np.ndarray, val_fraction: float, test_fraction: float, seed: int, dataset: str = "data"
) -> dict[str, np.ndarray]:
    """Split indices into train/val/test, stratified by label (or label set); depends only on
    the seed.

    With `test_fraction=0` the test split is left empty (the caller supplies an official one).
    """
    index = np.arange(len(y))
    y = strata(y, min(f for f in (val_fraction, test_fraction) if f > 0))
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


def load_splits(path: str | Path, n: int) -> dict[str, np.ndarray]:
    """Split indices saved by `save_splits`, checked against the dataset size `n`."""
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
            f"data.splits_file={path} indexes {saved_n} samples but the dataset has {n}: it "
            "belongs to other data, or the data changed since the run (restore them to go on)"
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


def save_splits(path: Path, split_index: dict[str, np.ndarray]) -> Path:
    """Write the split indices (train/val/test) so eval and predict reuse exactly these."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = sum(len(index) for index in split_index.values())
    with atomic_path(path) as temporary, temporary.open("wb") as handle:
        arrays: dict[str, Any] = {"n": np.array(n), **split_index}
        np.savez_compressed(handle, **arrays)
    return path


def fold_split(
    pool: np.ndarray, y: np.ndarray, folds: int, fold: int, seed: int, dataset: str
) -> dict[str, np.ndarray]:
    """Fold `fold` of `folds` stratified folds of the `pool` indices: it validates, the others
    train. The folds depend only on the pool, its labels and the seed."""
    from sklearn.model_selection import StratifiedKFold

    y = strata(y, 1 / folds)
    counts = np.bincount(y[pool] - y[pool].min())
    smallest = int(counts[counts > 0].min()) if len(pool) else 0
    if folds > smallest:
        raise ConfigError(
            f"data={dataset}: data.folds={folds} is more than the smallest class has samples "
            f"outside the test split ({smallest}); use data.folds<={smallest}"
        )
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    train, val = list(splitter.split(pool, y[pool]))[fold]
    return {"train": np.sort(pool[train]), "val": np.sort(pool[val])}


class Split:
    """Which samples train, validate and test: the indices a run saved (`splits_file`), the
    data's own splits where it has them, or stratified seeded fractions of what it lacks.
    With `folds`, train and val are fold `fold` of a stratified k-fold of everything but the
    test split, which stays the same for every fold."""

    def __init__(
        self,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        seed: int = 0,
        splits_file: str | None = None,
        folds: int | None = None,
        fold: int = 0,
    ) -> None:
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.seed, self.splits_file = seed, splits_file
        self.folds, self.fold = folds, fold

    def indices(self, labels: dict[str, np.ndarray], dataset: str) -> dict[str, np.ndarray]:
        """Indices into the parts concatenated in order, for each of train, val and test."""
        y = np.concatenate(list(labels.values()))
        if self.splits_file:
            index = load_splits(self.splits_file, len(y))
        elif "val" in labels and "test" in labels:  # the data's own three splits
            sizes = np.cumsum([0, *(len(labels[p]) for p in ("train", "val", "test"))])
            index = {p: np.arange(sizes[i], sizes[i + 1]) for i, p in enumerate(SPLITS)}
        elif "test" in labels:  # an official test split: val comes out of the official train
            n_train = len(labels["train"])
            index = stratified_split(labels["train"], self.val_fraction, 0.0, self.seed, dataset)
            index["test"] = np.arange(n_train, len(y))
        else:
            index = stratified_split(y, self.val_fraction, self.test_fraction, self.seed, dataset)
        if self.folds and not self.splits_file:  # train + val pooled, then folded
            pool = np.sort(np.concatenate([index["train"], index["val"]]))
            index.update(fold_split(pool, y, self.folds, self.fold, self.seed, dataset))
        for name, part in index.items():
            if len(part) == 0:
                raise ConfigError(
                    f"data={dataset}: split '{name}' is empty; raise data.val_fraction / "
                    "data.test_fraction or use more data"
                )
        return index

    def apply(
        self, parts: dict[str, tuple[torch.Tensor, torch.Tensor]], gather: Callable, dataset: str
    ) -> tuple[dict[str, np.ndarray], dict[str, tuple[torch.Tensor, torch.Tensor]]]:
        """The split indices and each split's (samples, labels); `gather` takes a split's samples
        out of the parts concatenated in order."""
        index = self.indices({part: y.numpy() for part, (_, y) in parts.items()}, dataset)
        samples = [x for x, _ in parts.values()]
        x = samples[0] if len(samples) == 1 else torch.cat(samples)  # one part: no copy
        y = torch.cat([y for _, y in parts.values()])
        splits = {}
        for name, rows in index.items():
            rows_t = torch.from_numpy(rows)
            splits[name] = (gather(x, rows_t), y.index_select(0, rows_t))
        return index, splits
