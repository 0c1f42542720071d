"""The checks each part of a dataset passes once: labels are class indices, features numbers."""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch

from logitlab.data.sources import MAX_CLASSES, Loaded
from logitlab.errors import ConfigError

log = logging.getLogger(__name__)

USER_DATA = (
    "npz",
    "csv",
    "image_folder",
    "dataset",
)  # sources whose class count comes from the user's data


def _examples(values: np.ndarray, limit: int = 3) -> str:
    unique = np.unique(values)
    shown = ", ".join(f"{v:g}" for v in unique[:limit])
    return shown + (", ..." if len(unique) > limit else "")


def validate_part(
    dataset: str, part: str, x: Any, y: Any, num_classes: int, keep_uint8: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check labels and features of one part once; return (features, int64 [N]) tensors (labels
    [N, K] of 0/1 for the multilabel head).

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
    if y_np.ndim == 2:  # the multilabel head's 0/1 target rows
        return _features(where, x_t, keep_uint8), multi_hot(where, y_np, num_classes)
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
    return _features(where, x_t, keep_uint8), torch.from_numpy(y_np.astype(np.int64))


def multi_hot(where: str, y: np.ndarray, num_labels: int) -> torch.Tensor:
    """A (N, K) label matrix checked: K columns, each cell 0 or 1; int64."""
    if y.shape[1] != num_labels:
        raise ConfigError(
            f"{where}: {y.shape[1]} label columns but data.num_classes={num_labels}; set "
            f"data.num_classes={y.shape[1]}, or null to count them"
        )
    if y.dtype.kind not in "biuf":
        raise ConfigError(f"{where}: labels of type {y.dtype}; give 0/1 label columns")
    bad = y[(y != 0) & (y != 1)]
    if len(bad):
        raise ConfigError(
            f"{where}: multilabel targets must be 0 or 1, found {_examples(bad)} ({len(bad)} "
            "cells); mark each label present (1) or absent (0)"
        )
    return torch.from_numpy(y.astype(np.int64))


def _features(where: str, x_t: torch.Tensor, keep_uint8: bool) -> torch.Tensor:
    """Features shaped (N, F) or (N, C, H, W), finite, float32 (uint8 kept with keep_uint8)."""
    if x_t.ndim == 1:
        x_t = x_t.reshape(len(x_t), 1)
    elif x_t.ndim == 3:
        x_t = x_t.unsqueeze(1)  # grayscale images: one channel
    elif x_t.ndim > 4:
        raise ConfigError(
            f"{where}: samples of shape {tuple(x_t.shape[1:])}; give tables (N, F) or images "
            "(N, H, W) / (N, C, H, W)"
        )
    if math.prod(x_t.shape[1:]) == 0:
        raise ConfigError(
            f"{where}: samples of shape {tuple(x_t.shape[1:])} hold no features; give at least "
            "one feature per sample"
        )
    if x_t.dtype == torch.uint8:
        x_t = x_t if keep_uint8 else as_features(x_t)
    elif x_t.dtype.is_floating_point:
        flat = x_t.reshape(len(x_t), -1)
        finite = torch.isfinite(flat)
        if not finite.all():
            raise ConfigError(
                f"{where}: {_cells(flat, ~finite)} features are NaN or inf, e.g. "
                f"{_cells(flat, ~finite, shown=True)}; clean the data"
            )
        huge = flat.abs() > torch.finfo(torch.float32).max
        if huge.any():  # finite in the file, inf once in float32
            raise ConfigError(
                f"{where}: {_cells(flat, huge)} features are beyond float32's range (about "
                f"3.4e38), e.g. {_cells(flat, huge, shown=True)}; rescale the data"
            )
        x_t = x_t.to(torch.float32)
    else:
        x_t = x_t.to(torch.float32)
    return x_t


def check_label_shape(task: str, y: torch.Tensor, source: str) -> None:
    """The multilabel head takes 0/1 label rows, every other head one class index per sample."""
    if task == "multilabel" and y.ndim == 1:
        raise ConfigError(
            f"data={source} has one label per sample, and model=multilabel needs several: give "
            "0/1 label columns (data.target=[a,b,c]) or a label-set column (data.label_separator)"
            ", or use model=multiclass"
        )
    if task != "multilabel" and y.ndim == 2:
        raise ConfigError(
            f"data={source} has {y.shape[1]} labels per sample; train it with model=multilabel"
        )


def _cells(flat: torch.Tensor, where: torch.Tensor, shown: bool = False) -> str:
    """How many cells `where` marks, or the first three as x[row, column]=value."""
    rows, cols = torch.nonzero(where, as_tuple=True)
    if not shown:
        return str(len(rows))
    pairs = zip(rows[:3].tolist(), cols[:3].tolist(), strict=True)
    return ", ".join(f"x[{r}, {c}]={flat[r, c].item():g}" for r, c in pairs)


def as_features(x: torch.Tensor) -> torch.Tensor:
    """float32 features: uint8 pixels scaled to [0, 1]; anything else as it is."""
    return x.to(torch.float32).div_(255.0) if x.dtype == torch.uint8 else x


def class_count(
    loaded: Loaded, given: int | None, class_names: list[str] | None, source: str
) -> int:
    """The dataset's class count: `given` (data.num_classes) checked against the data, or
    counted from it (its class names, else the largest label + 1) when null."""
    if class_names:
        count = len(class_names)
    else:
        labels = [np.asarray(y) for _, y in loaded.parts.values()]
        finite = [y[np.isfinite(y)] for y in labels if y.size and y.dtype.kind in "iuf"]
        count = int(max(y.max() for y in finite if y.size)) + 1 if finite else 0
        if labels and labels[0].ndim == 2:  # multilabel: one column per label
            count = labels[0].shape[1]
    if given is None:
        if not 2 <= count <= MAX_CLASSES:
            raise ConfigError(
                f"data={source} has {count} class(es); a classifier needs 2 to {MAX_CLASSES} "
                "(check the labels, or set data.num_classes)"
            )
        log.info("data=%s: %d classes, counted from the data", source, count)
        return count
    if source in USER_DATA and count and given > count:  # fewer: validate_part says so
        names = class_names or [str(c) for c in range(count)]
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise ConfigError(
            f"data.num_classes={given} but data={source} has {count} classes ({shown}); set "
            f"data.num_classes={count}, or null to count them"
        )
    return given


def new_samples(features: Any, shape: tuple[int, ...], source: str, name: str) -> torch.Tensor:
    """Samples to predict (a file's rows or images) checked and shaped as the training samples;
    uint8 pixels are scaled to [0, 1], as the training images were."""
    x, _ = validate_part(source, name, features, np.zeros(len(features), np.int64), 1)
    if tuple(x.shape[1:]) == shape:
        return x
    if math.prod(x.shape[1:]) != math.prod(shape):
        raise ConfigError(
            f"{name} has {math.prod(x.shape[1:])} features per sample but the model takes "
            f"{math.prod(shape)} (data={source}, samples of shape {shape}); give "
            f"{math.prod(shape)} columns"
        )
    return x.reshape(len(x), *shape)  # flattened images
