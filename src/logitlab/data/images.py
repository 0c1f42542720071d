"""Image folders: one subfolder of images per class, read lazily from disk, sample by sample.

`root/<class>/*.png` (also .jpg, .jpeg, .bmp, any case, in nested folders too) is split
stratified and seeded like every other source; `root/train`, `root/val` (optional) and
`root/test`, each of class subfolders, are the splits when they exist. Only file paths are held
in memory: a DataLoader's workers decode, resize, augment and normalise each image
(torchvision.transforms.v2), so a dataset larger than RAM trains with flat memory.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset
from torchvision.datasets.folder import find_classes, make_dataset
from torchvision.transforms import v2

from logitlab.data.pixels import read_pixels
from logitlab.data.sources import IMAGE_SUFFIXES, Loaded
from logitlab.data.standardize import Standardization
from logitlab.errors import ConfigError, first_line

log = logging.getLogger(__name__)

GRAYSCALE_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
SPLITS = ("train", "val", "test")


def is_image(path: Path) -> bool:
    """Whether the file's name ends in one of IMAGE_SUFFIXES (any case)."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def read_image(path: str | Path, channels: int) -> torch.Tensor:
    """One image file as (channels, H, W) (data/pixels.py): uint8 for 8-bit files, float32 in
    [0, 1] for 16-bit ones."""
    return torch.from_numpy(read_pixels(path, channels))


def image_header(path: str | Path) -> tuple[tuple[int, int], str]:
    """((height, width), PIL mode) from the file's header, without decoding the pixels."""
    try:
        with Image.open(str(path)) as image:
            width, height = image.size
            return (height, width), image.mode
    except (OSError, ValueError, SyntaxError, EOFError, UnidentifiedImageError) as error:
        reason = first_line(error)
        raise ConfigError(
            f"{path} is not a readable image ({reason}); replace or delete the file"
        ) from None


def sample_file(root: Path) -> Callable[[str], bool]:
    """The test of a sample file under `root`: an image, no dot-file (macOS `._x.png`), and no
    symbolic link on its way down, so a link loop cannot multiply the samples."""

    @functools.cache
    def linked(folder: Path) -> bool:
        return folder != root and (folder.is_symlink() or linked(folder.parent))

    def valid(path: str) -> bool:
        file = Path(path)
        relative = file.relative_to(root)
        if not is_image(relative) or any(part.startswith(".") for part in relative.parts):
            return False
        return not file.is_symlink() and not linked(file.parent)

    return valid


def class_folders(folder: Path) -> list[str]:
    """The class subfolders of `folder`, sorted by name (hidden ones and links skipped)."""
    try:
        classes, _ = find_classes(folder)
    except FileNotFoundError:
        return []
    return [c for c in classes if not c.startswith(".") and not (folder / c).is_symlink()]


def scan_folder(root: Path) -> tuple[list[str], dict[str, tuple[list[str], list[int]]]]:
    """(class names, {part: (files, labels)}) of an image folder; parts are `all` or its splits.

    Refuses, in one line each: a missing root, a root without class folders, fewer than two
    classes, an empty class folder, and split folders whose classes differ from train's.
    """
    if not root.is_dir():
        raise ConfigError(
            f"data.root={root} is not a folder; give the folder holding one subfolder per class"
        )
    present = [part for part in SPLITS if (root / part).is_dir()]
    if present and "train" not in present:
        raise ConfigError(
            f"data.root={root} has {'/'.join(present)} but no train/ folder; add root/train "
            "(the training images, one subfolder per class)"
        )
    if present and "test" not in present:
        raise ConfigError(
            f"data.root={root} has train/ but no test/ folder; add root/test, or put the class "
            "folders directly in root to split them by data.val_fraction/test_fraction"
        )
    layout = {part: root / part for part in present} if present else {"all": root}
    first = next(iter(layout.values()))
    classes = class_folders(first)
    if not classes:
        loose = "" if not any(is_image(p) for p in first.iterdir()) else " (it holds images)"
        raise ConfigError(
            f"data.root: {first} has no class subfolders{loose}; sort the images into one "
            "folder per class, e.g. root/cat/*.png, root/dog/*.png"
        )
    if len(classes) < 2:
        raise ConfigError(
            f"data.root: {first} has one class folder ({classes[0]}); a classifier needs at "
            "least two"
        )
    parts: dict[str, tuple[list[str], list[int]]] = {}
    for part, folder in layout.items():
        unknown = sorted(set(class_folders(folder)) - set(classes))
        if unknown:
            raise ConfigError(
                f"data.root: {folder} has class folder(s) {', '.join(unknown)} that "
                f"{first} lacks; the splits must share their classes"
            )
        index = {name: i for i, name in enumerate(classes) if (folder / name).is_dir()}
        found = make_dataset(folder, index, is_valid_file=sample_file(folder), allow_empty=True)
        found.sort()  # by path: the same order on every file system
        counts = np.bincount([label for _, label in found], minlength=len(classes))
        empty = [classes[i] for i in np.flatnonzero(counts == 0)]
        if empty and part in ("all", "train"):
            raise ConfigError(
                f"data.root: class folder {folder / empty[0]} holds no "
                f"{'/'.join(IMAGE_SUFFIXES)} images; add some or remove the folder"
            )
        if not found:
            raise ConfigError(f"data.root: {folder} holds no images; add some or remove it")
        parts[part] = ([path for path, _ in found], [label for _, label in found])
    return classes, parts


def labelled_files(
    root: Path, labels_file: str, separator: str, class_names: list[str] | None
) -> tuple[list[str], dict[str, tuple[list[str], Any]]]:
    """(label names, {"all": (files, 0/1 rows)}) of a multilabel image folder: `labels_file` is a
    CSV with a header, a `file` column (paths under `root`) and a `labels` column of label sets."""
    from logitlab.data.label_sets import label_sets
    from logitlab.data.tables import read_csv

    what = f"data.labels_file={labels_file}"
    if not Path(labels_file).is_file():
        raise ConfigError(f"{what} does not exist; give a CSV of file,labels rows")
    header, rows, first_line = read_csv(Path(labels_file), "data.labels_file", True)
    if header is None or not {"file", "labels"} <= set(header):
        raise ConfigError(f"{what} needs a header with the columns file and labels")
    names, y = label_sets(rows, header.index("labels"), separator, class_names, first_line, what)
    valid = sample_file(root)
    files = []
    for r, row in enumerate(rows):
        path = root / row[header.index("file")]
        if not path.is_file() or not valid(str(path)):
            raise ConfigError(
                f"{what}: line {first_line + r} names {row[header.index('file')]}, which is not "
                f"an image file under data.root={root}; fix the row or add the image"
            )
        files.append(str(path))
    return names, {"all": (files, y)}


class ImageFiles(Dataset):
    """Image files and their labels; each item is decoded and transformed when it is asked for.

    The paths are one numpy string array, not a list of Python strings, so DataLoader workers
    share them without copying (no reference counts to touch).
    """

    def __init__(self, files: np.ndarray, labels: torch.Tensor, channels: int, transform) -> None:
        self.files, self.labels = files, labels
        self.channels, self.transform = channels, transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = read_image(str(self.files[index]), self.channels)
        return self.transform(image), self.labels[index]


class ImageSamples:
    """The samples of an image folder: file ids in memory, pixels decoded by DataLoader workers.

    `image_size` ([height, width]) and `channels` (1 grayscale, 3 RGB) default to the images'
    own (read from the file headers; mixed sizes then need data.image_size). Standardisation
    uses per-channel mean and std measured on (up to `stats_samples` images of) the training
    split; they are saved in the run's data.json and reused by eval and predict.
    """

    in_memory = False

    def __init__(
        self,
        root: str,
        image_size: list[int] | None = None,
        channels: int | None = None,
        stats_samples: int = 10_000,
        transforms: dict[str, Any] | None = None,
        seed: int = 0,
        batch_size: int = 256,
        labels_file: str | None = None,
        label_separator: str | None = None,
        class_names: list[str] | None = None,
    ) -> None:
        self.source = "image_folder"
        self.root = Path(root)
        # multilabel: a CSV of file,labels rows in place of class subfolders
        self.labels_file, self.label_separator = labels_file, label_separator or "|"
        self.class_names = class_names
        self.image_size = list(image_size) if image_size else None
        self.channels = channels
        self.stats_samples, self.seed, self.batch_size = stats_samples, seed, batch_size
        self.transforms = dict(transforms or {})
        self.files = np.array([], dtype=str)

    def prepare(self) -> None:
        """Nothing to download: the images are on disk."""

    def read(self, num_classes: int | None) -> Loaded:
        """Scan the folder: each part's file ids (into `files`) and labels."""
        if self.labels_file:
            classes, parts = labelled_files(
                self.root, self.labels_file, self.label_separator, self.class_names
            )
        else:
            classes, parts = scan_folder(self.root)
        self.files = np.array([f for part_files, _ in parts.values() for f in part_files])
        loaded: dict[str, tuple[Any, Any]] = {}
        start = 0
        for part, (part_files, labels) in parts.items():
            ids = torch.arange(start, start + len(part_files))
            loaded[part] = (ids, torch.as_tensor(labels, dtype=torch.int64))
            start += len(part_files)
        return Loaded(loaded, class_names=classes, extra={"root": str(self.root)})

    def check(
        self, part: str, x: Any, y: Any, num_classes: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """File ids and labels are right by construction (labels are class folders)."""
        return x, y

    def digest(self, digest: Any, x: torch.Tensor) -> None:
        """Add a part's files (path under the root and size) to the data's fingerprint."""
        for file in self.files[x.numpy()]:
            path = Path(str(file))
            digest.update(f"{path.relative_to(self.root)}\0{path.stat().st_size}\n".encode())

    def gather(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """A split's file ids."""
        return x.index_select(0, index)

    def settle(self, train: tuple[torch.Tensor, torch.Tensor]) -> tuple[int, ...]:
        """(channels, height, width): data.image_size and data.channels, or the images' own."""
        if self.image_size is None or self.channels is None:
            sizes: dict[tuple[int, int], str] = {}
            modes: set[str] = set()
            for file in self.files:
                size, mode = image_header(file)
                sizes.setdefault(size, str(file))
                modes.add(mode)
            if self.image_size is None:
                if len(sizes) > 1:
                    (a, file_a), (b, file_b) = list(sizes.items())[:2]
                    raise ConfigError(
                        f"data.root={self.root} mixes image sizes ({file_a} is {a[0]}x{a[1]}, "
                        f"{file_b} is {b[0]}x{b[1]}); set data.image_size=[height,width] to "
                        "resize"
                    )
                self.image_size = list(next(iter(sizes)))
            if self.channels is None:
                self.channels = 1 if modes <= set(GRAYSCALE_MODES) else 3
        shape = (int(self.channels), int(self.image_size[0]), int(self.image_size[1]))
        kind = "grayscale" if shape[0] == 1 else "RGB"
        log.info("data=image_folder: %s images, %dx%dx%d (%s)", len(self.files), *shape, kind)
        return shape

    def pipeline(self, train: bool, stats: Standardization | None = None) -> Any:
        """The per-sample transforms: resize, training augmentation, scale to [0, 1], normalise.
        (16-bit images come in [0, 1] already; ToDtype scales uint8 ones only.)

        `data.transforms.extra` transforms run on uint8 images after the built-in augmentation.
        """
        size = list(self.image_size or [])
        steps: list[Any] = [v2.Resize(size, antialias=True)]
        if train:
            settings = self.transforms
            if settings.get("crop_scale"):
                scale = tuple(settings["crop_scale"])
                steps.append(v2.RandomResizedCrop(size, scale=scale, antialias=True))
            if settings.get("flip"):
                steps.append(v2.RandomHorizontalFlip())
            if settings.get("rotation"):
                steps.append(v2.RandomRotation(float(settings["rotation"])))
            steps.extend(settings.get("extra") or [])
        steps.append(v2.ToDtype(torch.float32, scale=True))
        if stats is not None:
            steps.append(v2.Normalize(**stats.record()))
        return v2.Compose(steps)

    def statistics(self, train: tuple[torch.Tensor, torch.Tensor], workers: int) -> Standardization:
        """Per-channel mean and std of the training images (a seeded sample of them if many)."""
        ids, y = train
        if len(ids) > self.stats_samples:
            generator = torch.Generator().manual_seed(self.seed)
            pick = torch.randperm(len(ids), generator=generator)[: self.stats_samples].sort()
            ids, y = ids[pick.values], y[pick.values]
        images = ImageFiles(
            self.files[ids.numpy()], y, int(self.channels or 1), self.pipeline(False)
        )
        loader = DataLoader(images, batch_size=self.batch_size, num_workers=workers)
        shape = (int(self.channels or 1), *map(int, self.image_size or []))
        stats = Standardization.fit_stream((x for x, _ in loader), shape)
        log.info(
            "data=image_folder: per-channel mean %s, std %s (%d training images)",
            [round(v, 4) for v in stats.mean.flatten().tolist()],
            [round(v, 4) for v in stats.std.flatten().tolist()],
            len(ids),
        )
        return stats

    def standardize_(self, x: torch.Tensor, stats: Standardization) -> None:
        """Nothing here: each image is normalised by the pipeline when it is read."""

    def dataset(
        self, x: torch.Tensor, y: torch.Tensor, train: bool, stats: Standardization | None
    ) -> Dataset:
        """A split's images, decoded and transformed when asked for."""
        return ImageFiles(
            self.files[x.numpy()], y, int(self.channels or 1), self.pipeline(train, stats)
        )

    def names(self, x: torch.Tensor) -> list[str]:
        """The image file of each sample of a split, in split order."""
        return [str(f) for f in self.files[x.numpy()]]

    def record(self) -> dict[str, Any]:
        """What data.json adds for an image folder: the root and the image shape."""
        return {
            "root": str(self.root),
            "image_size": self.image_size,
            "channels": self.channels,
            "pixel_max": 1.0,
        }


def __getattr__(name: str) -> Any:
    """`ImageFolderDataModule`, the name of saved run configs: the one DataModule."""
    if name == "ImageFolderDataModule":
        from logitlab.data.datamodule import ClassificationDataModule

        return ClassificationDataModule
    raise AttributeError(f"module 'logitlab.data.images' has no attribute '{name}'")
