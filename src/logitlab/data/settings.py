"""The one check of the `data` settings: made before anything is built (config rules) and by the
DataModule itself when built from Python; torch-free, so a mistake is refused at once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from logitlab.data.sources import MAX_CLASSES, SOURCES
from logitlab.errors import ConfigError

TASKS = ("multiclass", "binary", "multilabel")
LOADERS = ("tensor", "dataloader")
BALANCE = {"binary": "pos_weight", "multiclass": "class_weight", "multilabel": "pos_weight"}
# Your-own-data sources and the keys each needs, with an example value.
REQUIRED = {
    "csv": (("path", "mine.csv"), ("target", "label")),
    "npz": (("path", "mine.npz"),),
    "image_folder": (("root", "path/to/images"),),
}


def check_settings(data: Mapping[str, Any], task: str) -> None:
    """Refuse `data` settings that cannot work for the `task` head, naming the key and the fix."""
    source, own = data.get("source"), data.get("source_kwargs") or {}
    needed = REQUIRED.get(str(source), ())
    unset = [(key, value) for key, value in needed if not (data.get(key) or own.get(key))]
    if unset:
        keys = " and ".join(f"data.{key}" for key, _ in unset)
        example = " ".join(f"data.{key}={value}" for key, value in unset)
        raise ConfigError(f"data={source} needs {keys}; e.g. {example}")
    given = [key for key in ("dataset", "train", "val", "test") if data.get(key) is not None]
    if source == "dataset" and given not in (
        ["dataset"],
        ["train", "val"],
        ["train", "val", "test"],
    ):
        raise ConfigError(
            "data=dataset needs data.dataset (one Dataset, split by logitlab) or data.train and "
            "data.val (data.test optional), each a {_target_: ...} node; given: "
            f"{', '.join(given) or 'none'}"
        )
    for holds, message in _rules(data, task):
        if not holds:
            raise ConfigError(message)


def _rules(data: Mapping[str, Any], task: str) -> list[tuple[bool, str]]:
    """(holds, message) for every data setting with a valid range or a choice."""
    source, loader = data.get("source"), data.get("loader", "tensor")
    batch, eval_batch = data.get("batch_size", 64), data.get("eval_batch_size")
    val, test = data.get("val_fraction", 0.15), data.get("test_fraction", 0.15)
    folds, fold = data.get("folds"), data.get("fold", 0)
    classes, balance = data.get("num_classes"), data.get("balance")
    names, workers = data.get("class_names"), data.get("num_workers", 0)
    size, channels = data.get("image_size"), data.get("channels")
    scale = (data.get("transforms") or {}).get("crop_scale")
    fits = BALANCE.get(task)
    return [
        (task in TASKS, f"unknown task '{task}'; use one of {', '.join(TASKS)}"),
        (
            source in SOURCES or source in ("image_folder", "dataset"),
            f"data.source='{source}' is not a known dataset; use one of {', '.join(SOURCES)}, "
            "image_folder, dataset",
        ),
        (
            loader in LOADERS,
            f"data.loader='{loader}' is not known; use one of {', '.join(LOADERS)}",
        ),
        (
            0 < val < 1 and 0 <= test < 1 and val + test < 1,
            f"data.val_fraction={val} and data.test_fraction={test} leave a split empty; each "
            "must be in (0, 1) and their sum below 1",
        ),
        (
            folds is None or (isinstance(folds, int) and folds >= 2),
            f"data.folds={folds} must be at least 2 (null: no cross-validation)",
        ),
        (
            folds is None or (isinstance(fold, int) and 0 <= fold < folds),
            f"data.fold={fold} must be in [0, {folds}) for data.folds={folds}",
        ),
        (
            isinstance(batch, int) and batch > 0,
            f"data.batch_size={batch} must be positive, e.g. data.batch_size=64",
        ),
        (
            eval_batch is None or eval_batch > 0,
            f"data.eval_batch_size={eval_batch} must be positive (null: max(batch_size, 1024))",
        ),
        (
            classes is None or 2 <= classes <= MAX_CLASSES,
            f"data.num_classes={classes} must be in [2, {MAX_CLASSES}] (null: counted from the "
            "data)",
        ),
        (
            not names or classes is None or len(names) == classes,
            f"data.class_names has {len(names or [])} names but data.num_classes={classes}; "
            "give one name per class, in class-index order",
        ),
        (
            isinstance(workers, int) and workers >= 0,
            f"data.num_workers={workers} must be >= 0 (0: load in the main process)",
        ),
        (
            task != "binary" or bool(data.get("positive_classes")),
            "data.positive_classes is empty; the binary head needs the classes that count as 1, "
            "e.g. data.positive_classes=[8]",
        ),
        (
            task == "binary" or not data.get("keep_classes"),
            "data.keep_classes applies to the binary head only; use model=binary or "
            "data.keep_classes=null",
        ),
        (
            task != "multilabel"
            or not any((data.get("augment") or {}).get(k) for k in ("mixup", "cutmix")),
            "data.augment.mixup and cutmix mix one class per sample and do not apply to "
            "model=multilabel; set them to 0",
        ),
        (
            balance in (None, fits),
            f"data.balance={balance} is not available for the {task} head; use "
            f"data.balance={fits} (or null) with model={task}",
        ),
        (
            size is None or (len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)),
            f"data.image_size={list(size or [])} must be [height, width] in pixels, e.g. "
            "data.image_size=[28,28] (null: the images' own size)",
        ),
        (channels in (None, 1, 3), f"data.channels={channels} must be 1 (grayscale) or 3 (RGB)"),
        (
            source != "image_folder" or data.get("num_features") is None,
            "data.num_features does not apply to image folders; the sample shape is "
            "data.channels x data.image_size (set data.num_features=null)",
        ),
        (
            data.get("stats_samples", 1) > 0,
            f"data.stats_samples={data.get('stats_samples')} must be positive",
        ),
        (
            scale is None or (len(scale) == 2 and 0 < scale[0] <= scale[1] <= 1),
            f"data.transforms.crop_scale={list(scale or [])} must be [low, high] with "
            "0 < low <= high <= 1, e.g. [0.8, 1.0] (null: no random crop)",
        ),
    ]
