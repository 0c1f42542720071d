"""Image folders: one subfolder of images per class, read lazily from disk, sample by sample.

`root/<class>/*.png` (also .jpg, .jpeg, .bmp, any case, in nested folders too) is split
stratified and seeded like every other source; `root/train`, `root/val` (optional) and
`root/test`, each of class subfolders, are the splits when they exist. Only file paths are held
in memory: a DataLoader's workers decode, resize, augment and normalise each image
(torchvision.transforms.v2), so a dataset larger than RAM trains with flat memory.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from logitlab.data.datamodule import ClassificationDataModule
from logitlab.data.sources import Loaded
from logitlab.errors import ConfigError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
GRAYSCALE_MODES = ("1", "L", "LA", "I", "I;16", "F")
SPLITS = ("train", "val", "test")


def is_image(path: Path) -> bool:
    """Whether the file's name ends in one of IMAGE_SUFFIXES (any case)."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def read_image(path: str | Path, channels: int) -> torch.Tensor:
    """One image file as uint8 (channels, H, W): 1 channel converts to grayscale, 3 to RGB."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            array = np.array(image.convert("L" if channels == 1 else "RGB"))
    except (OSError, ValueError, SyntaxError, EOFError, UnidentifiedImageError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(
            f"{path} is not a readable image ({reason}); replace or delete the file"
        ) from None
    tensor = torch.from_numpy(array)
    return tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1).contiguous()


def image_header(path: str | Path) -> tuple[tuple[int, int], str]:
    """((height, width), PIL mode) from the file's header, without decoding the pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
            return (height, width), image.mode
    except (OSError, ValueError, SyntaxError, EOFError, UnidentifiedImageError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(
            f"{path} is not a readable image ({reason}); replace or delete the file"
        ) from None


def class_folders(folder: Path) -> list[Path]:
    """The class subfolders of `folder`, sorted by name (hidden ones skipped)."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def images_in(folder: Path) -> list[Path]:
    """The image files under `folder` (nested folders included), sorted."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and is_image(p))


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
    classes = [folder.name for folder in class_folders(first)]
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
        names = [f.name for f in class_folders(folder)]
        unknown = sorted(set(names) - set(classes))
        if unknown:
            raise ConfigError(
                f"data.root: {folder} has class folder(s) {', '.join(unknown)} that "
                f"{first} lacks; the splits must share their classes"
            )
        files: list[str] = []
        labels: list[int] = []
        for label, name in enumerate(classes):
            found = images_in(folder / name) if (folder / name).is_dir() else []
            if not found and part in ("all", "train"):
                raise ConfigError(
                    f"data.root: class folder {folder / name} holds no "
                    f"{'/'.join(IMAGE_SUFFIXES)} images; add some or remove the folder"
                )
            files.extend(str(f) for f in found)
            labels.extend([label] * len(found))
        if not files:
            raise ConfigError(f"data.root: {folder} holds no images; add some or remove it")
        parts[part] = (files, labels)
    return classes, parts


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


class ImageFolderDataModule(ClassificationDataModule):
    """A folder of class subfolders of images, served lazily through DataLoader workers.

    `image_size` ([height, width]) and `channels` (1 grayscale, 3 RGB) default to the images'
    own (read from the file headers; mixed sizes then need data.image_size). Standardisation
    uses per-channel mean and std measured on (up to `stats_samples` images of) the training
    split; they are saved in the run's data.json and reused by eval and predict.
    """

    def __init__(
        self,
        root: str | None = None,
        image_size: list[int] | None = None,
        channels: int | None = None,
        stats_samples: int = 10_000,
        pin_memory: bool | None = None,
        transforms: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs["source"] = "image_folder"
        kwargs["loader"] = "dataloader"
        super().__init__(**kwargs)
        if not root:
            raise ConfigError("data=image_folder needs a folder: set data.root=/path/to/images")
        if image_size is not None and (
            len(image_size) != 2 or not all(isinstance(v, int) and v > 0 for v in image_size)
        ):
            raise ConfigError(
                f"data.image_size={list(image_size)} must be [height, width] in pixels, e.g. "
                "data.image_size=[28,28] (null: the images' own size)"
            )
        if channels not in (None, 1, 3):
            raise ConfigError(f"data.channels={channels} must be 1 (grayscale) or 3 (RGB)")
        if stats_samples <= 0:
            raise ConfigError(f"data.stats_samples={stats_samples} must be positive")
        transforms = dict(transforms or {})
        scale = transforms.get("crop_scale")
        if scale is not None and not (len(scale) == 2 and 0 < scale[0] <= scale[1] <= 1):
            raise ConfigError(
                f"data.transforms.crop_scale={list(scale)} must be [low, high] with "
                "0 < low <= high <= 1, e.g. [0.8, 1.0] (null: no random crop)"
            )
        self.root = Path(root)
        self.image_size = list(image_size) if image_size else None
        self.channels = channels
        self.stats_samples = stats_samples
        self.pin_memory = pin_memory
        self.transforms = transforms
        self.files = np.array([], dtype=str)

    def prepare_data(self) -> None:
        """Nothing to download: the images are on disk."""

    def _read(self) -> Loaded:
        classes, parts = scan_folder(self.root)
        files = [f for part_files, _ in parts.values() for f in part_files]
        self.files = np.array(files)
        loaded: dict[str, tuple[Any, Any]] = {}
        start = 0
        for part, (part_files, labels) in parts.items():
            ids = torch.arange(start, start + len(part_files))
            loaded[part] = (ids, torch.tensor(labels, dtype=torch.int64))
            start += len(part_files)
        return Loaded(loaded, class_names=classes, extra={"root": str(self.root)})

    def _load(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        loaded = self._read()
        self._adopt_classes(loaded)
        if self.num_features is not None:
            raise ConfigError(
                "data.num_features does not apply to image folders; the sample shape is "
                "data.channels x data.image_size (set data.num_features=null)"
            )
        return loaded.parts  # (file ids, labels): labels are class indices by construction

    def setup(self, stage: str | None = None) -> None:
        """Scan, view, split; settle the image shape; measure (or read) mean and std."""
        if self.splits:
            return
        ids, y = self._split(self._task_view(self._load()))
        for name, index in self.split_index.items():
            index_t = torch.from_numpy(index)
            self.splits[name] = (ids.index_select(0, index_t), y.index_select(0, index_t))
        self._settle_shape(ids)
        if self.standardize and not self._read_stats():
            self._measure_stats()
        self.source_info.update(image_size=self.image_size, channels=self.channels)
        self._summarise()

    def _settle_shape(self, ids: torch.Tensor) -> None:
        """data.image_size and data.channels left null come from the images' headers."""
        if self.image_size is not None and self.channels is not None:
            return
        sizes: dict[tuple[int, int], str] = {}
        modes: set[str] = set()
        for file in self.files[ids.numpy()]:
            size, mode = image_header(file)
            sizes.setdefault(size, str(file))
            modes.add(mode)
        if self.image_size is None:
            if len(sizes) > 1:
                (a, file_a), (b, file_b) = list(sizes.items())[:2]
                raise ConfigError(
                    f"data.root={self.root} mixes image sizes ({file_a} is {a[0]}x{a[1]}, "
                    f"{file_b} is {b[0]}x{b[1]}); set data.image_size=[height,width] to resize"
                )
            self.image_size = list(next(iter(sizes)))
        if self.channels is None:
            self.channels = 1 if modes <= set(GRAYSCALE_MODES) else 3
        log.info("data=image_folder: %s images, %s", len(ids), self.describe_shape())

    def describe_shape(self) -> str:
        """E.g. '1x28x28 (grayscale)'."""
        channels, height, width = self.input_shape
        return f"{channels}x{height}x{width} ({'grayscale' if channels == 1 else 'RGB'})"

    @property
    def input_shape(self) -> tuple[int, ...]:
        """(channels, height, width), derived from the config or the images."""
        if self.channels is None or self.image_size is None:
            raise RuntimeError("the image shape is known once the folder is scanned (setup)")
        return (int(self.channels), int(self.image_size[0]), int(self.image_size[1]))

    def pipeline(self, train: bool, normalize: bool = True) -> Any:
        """The per-sample transforms: resize, training augmentation, scale to [0, 1], normalise.

        `data.transforms.extra` transforms run on uint8 images after the built-in augmentation.
        """
        from torchvision.transforms import v2

        size = list(self.input_shape[1:])
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
        if normalize and self.mean is not None and self.std is not None:
            steps.append(v2.Normalize(self.mean.flatten().tolist(), self.std.flatten().tolist()))
        return v2.Compose(steps)

    def _measure_stats(self) -> None:
        """Per-channel mean and std of the training images (a seeded sample of them if many)."""
        ids, y = self.splits["train"]
        if len(ids) > self.stats_samples:
            generator = torch.Generator().manual_seed(self.seed)
            pick = torch.randperm(len(ids), generator=generator)[: self.stats_samples]
            ids, y = ids[pick.sort().values], y[pick.sort().values]
        channels = self.input_shape[0]
        dataset = ImageFiles(self.files[ids.numpy()], y, channels, self.pipeline(False, False))
        loader = DataLoader(dataset, batch_size=256, num_workers=self.num_workers)
        total = torch.zeros(channels, dtype=torch.float64)
        squares = torch.zeros(channels, dtype=torch.float64)
        count = 0
        for x, _ in loader:
            x = x.to(torch.float64)
            total += x.sum(dim=(0, 2, 3))
            squares += x.square().sum(dim=(0, 2, 3))
            count += x.shape[0] * x.shape[2] * x.shape[3]
        mean = total / count
        std = (squares / count - mean.square()).clamp_min(0).sqrt()
        std[std < 1e-6] = 1.0  # a constant channel stays finite
        self.mean = mean.float().reshape(-1, 1, 1)
        self.std = std.float().reshape(-1, 1, 1)
        log.info(
            "data=image_folder: per-channel mean %s, std %s (%d training images)",
            [round(v, 4) for v in self.mean.flatten().tolist()],
            [round(v, 4) for v in self.std.flatten().tolist()],
            len(ids),
        )

    def _pin(self) -> bool:
        if self.pin_memory is not None:
            return self.pin_memory
        trainer = self.trainer
        return trainer is not None and trainer.strategy.root_device.type == "cuda"

    def _dataset(self, split: str, train: bool) -> ImageFiles:
        ids, y = self.splits[split]
        return ImageFiles(self.files[ids.numpy()], y, self.input_shape[0], self.pipeline(train))

    def _batches(self, split: str, shuffle: bool, pad: bool) -> DataLoader:
        sampler, batch_size = self._sampler(split, shuffle, pad)
        return DataLoader(
            self._dataset(split, train=split == "train"),
            batch_size=batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self._pin(),
        )

    def sample_batches(self, split: str):
        """A split's (images, labels) batches, decoded and normalised as evaluation sees them."""
        yield from DataLoader(
            self._dataset(split, train=False),
            batch_size=self.eval_batch_size,
            num_workers=self.num_workers,
        )

    def sample_names(self, split: str) -> list[str]:
        """The image file of each sample of `split`, in split order."""
        return [str(f) for f in self.files[self.splits[split][0].numpy()]]

    def _stats_size(self) -> int:
        return int(self.channels or 0)
