"""Typed schemas for the config groups a user sets, registered in Hydra's ConfigStore.

The YAML files in conf/ extend them (`- /schema/trainer@_here_` in their defaults), so Hydra
itself refuses a value of the wrong type with the key's full name, e.g. `trainer.max_epochs=abc`:
"Value 'abc' could not be converted to Integer, full_key: trainer.max_epochs".
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field, make_dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore

# Optional[...] rather than `X | None`: OmegaConf reads these annotations at runtime.


# Trainer arguments the schema leaves out on purpose: logitlab passes them itself.
TRAINER_GIVEN = ("logger", "callbacks")


PLAIN = {"int": int, "float": float, "bool": bool, "str": str}


def _field_type(annotation: ast.expr | None) -> Any:
    """int, float, bool, str or Optional of one of them, as annotated; anything else Any."""
    if isinstance(annotation, ast.Name) and annotation.id in PLAIN:
        return PLAIN[annotation.id]
    if (
        isinstance(annotation, ast.Subscript)
        and isinstance(annotation.value, ast.Name)
        and annotation.value.id == "Optional"
        and isinstance(annotation.slice, ast.Name)
        and annotation.slice.id in PLAIN
    ):
        return Optional[PLAIN[annotation.slice.id]]  # noqa: UP045
    return Any


def trainer_schema() -> type:
    """Every lightning.Trainer argument but `logger` and `callbacks` (logitlab builds them from
    their groups), typed and with Lightning's own defaults, read from the Trainer's source
    without importing it, so a config mistake is refused before torch loads."""
    spec = find_spec("lightning")
    if spec is None or spec.origin is None:
        raise ImportError("lightning is not installed")
    source = Path(spec.origin).parent / "pytorch" / "trainer" / "trainer.py"
    tree = ast.parse(source.read_text())
    trainer = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Trainer")
    init = next(n for n in trainer.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    fields: list[Any] = [("_target_", str, "lightning.pytorch.Trainer")]
    for arg, default in zip(init.args.kwonlyargs, init.args.kw_defaults, strict=True):
        if arg.arg in TRAINER_GIVEN or default is None:
            continue
        fields.append((arg.arg, _field_type(arg.annotation), ast.literal_eval(default)))
    return make_dataclass("TrainerSchema", fields)


@dataclass
class AugmentSchema:
    """Batch augmentation of training images (logitlab.data.augment.Augment)."""

    shift: int = 0
    flip: bool = False
    erase: float = 0.0
    mixup: float = 0.0
    cutmix: float = 0.0
    mix_prob: float = 1.0


@dataclass
class DataSchema:
    """ClassificationDataModule arguments, with its defaults (a test holds the two equal)."""

    _target_: str = "logitlab.data.datamodule.ClassificationDataModule"
    source: str = "digits"  # one of data/sources.py's SOURCES, or image_folder
    num_features: Optional[int] = None  # noqa: UP045  checked against the data (null: derived)
    num_classes: Optional[int] = None  # noqa: UP045  null: counted from the data
    batch_size: int = 64
    eval_batch_size: Optional[int] = None  # noqa: UP045  null: max(batch_size, 1024)
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    # k-fold cross-validation: fold `fold` of `folds` stratified folds of train + val validates
    folds: Optional[int] = None  # noqa: UP045  null: one train/val split by val_fraction
    fold: int = 0
    standardize: bool = True  # per feature (tables) or channel (images), on the training split
    # binary head only: these classes become 1, the others 0 (one-vs-rest), after keeping only
    # keep_classes (e.g. [3, 8] for 3-vs-8; null keeps all); class indices or class names
    positive_classes: Optional[list[Any]] = None  # noqa: UP045
    keep_classes: Optional[list[Any]] = None  # noqa: UP045
    class_names: Optional[list[str]] = None  # noqa: UP045
    # pos_weight (binary head): train negatives/positives for the loss's pos_weight;
    # class_weight (multiclass head): n / (C * n_c) per class for the loss's weight
    balance: Optional[str] = None  # noqa: UP045
    # tensor: whole batches indexed from in-memory tensors (fast); dataloader: a DataLoader
    loader: str = "tensor"
    num_workers: int = 0
    pin_memory: Optional[bool] = None  # noqa: UP045  null: on when training on a GPU
    seed: int = 0
    data_dir: str = "data"
    download: bool = False  # fetch torchvision datasets into data_dir when a network is there
    splits_file: Optional[str] = None  # noqa: UP045  reuse saved split indices (eval, predict)
    stats_file: Optional[str] = None  # noqa: UP045  reuse saved mean and std (eval, predict)
    path: Optional[str] = None  # noqa: UP045  data=csv, data=npz: the file
    target: Any = None  # data=csv: the label column, by name or index
    header: Optional[bool] = None  # noqa: UP045  data=csv: the first row is a header (null: detect)
    # data=csv, model=multilabel: one column of label sets joined by this ("a|c"; null: 0/1 columns)
    label_separator: Optional[str] = None  # noqa: UP045
    source_kwargs: dict[str, Any] = field(default_factory=dict)  # a source's own arguments
    # training batches of images only, on their device, seeded (a resume draws the same)
    augment: AugmentSchema = field(default_factory=AugmentSchema)


@dataclass
class ImageTransformsSchema:
    """Per-sample training transforms of an image folder (torchvision.transforms.v2)."""

    crop_scale: Optional[list[float]] = None  # noqa: UP045  RandomResizedCrop's scale range
    flip: bool = False  # RandomHorizontalFlip
    rotation: float = 0.0  # RandomRotation, degrees either way
    extra: list[Any] = field(default_factory=list)  # more v2 transforms, each a {_target_: ...}


@dataclass
class ImageFolderSchema(DataSchema):
    """ClassificationDataModule arguments of a folder of class subfolders of images."""

    _target_: str = "logitlab.data.datamodule.ClassificationDataModule"
    source: str = "image_folder"
    root: Optional[str] = None  # noqa: UP045
    image_size: Optional[list[int]] = None  # noqa: UP045  [height, width]; null: the images'
    channels: Optional[int] = None  # noqa: UP045  1 (grayscale) or 3 (RGB); null: the images'
    stats_samples: int = 10_000  # images measured for the per-channel mean and std
    # model=multilabel: a CSV of file,labels rows (labels: a set joined by data.label_separator)
    labels_file: Optional[str] = None  # noqa: UP045
    transforms: ImageTransformsSchema = field(default_factory=ImageTransformsSchema)


@dataclass
class DatasetSchema(DataSchema):
    """ClassificationDataModule arguments of your own Dataset: one to split, or the splits."""

    _target_: str = "logitlab.data.datamodule.ClassificationDataModule"
    _recursive_: bool = False  # the DataModule builds the datasets (and checks what they are)
    source: str = "dataset"
    dataset: Any = None  # {_target_: ...}: one Dataset, split by val_fraction/test_fraction
    train: Any = None  # or the splits: train and val, test optional
    val: Any = None
    test: Any = None


@dataclass
class MulticlassSchema:
    """MulticlassClassifier arguments (the loss and metrics come from their own groups)."""

    _target_: str = "logitlab.models.heads.MulticlassClassifier"
    num_classes: Optional[int] = None  # noqa: UP045  from data.num_classes (conf/model/)
    net: Any = None  # model/net: any nn.Module by _target_, with its own arguments
    optimizer: Any = None
    scheduler: Any = None


@dataclass
class BinarySchema:
    """BinaryClassifier arguments (the loss and metrics come from their own groups)."""

    _target_: str = "logitlab.models.heads.BinaryClassifier"
    net: Any = None
    optimizer: Any = None
    scheduler: Any = None


@dataclass
class MultilabelSchema:
    """MultilabelClassifier arguments (the loss and metrics come from their own groups)."""

    _target_: str = "logitlab.models.heads.MultilabelClassifier"
    num_classes: Optional[int] = None  # noqa: UP045  labels, from data.num_classes (conf/model/)
    net: Any = None
    optimizer: Any = None
    scheduler: Any = None


@dataclass
class AdamSchema:
    """torch.optim.Adam / AdamW arguments logitlab's optimizer configs set."""

    _target_: str = "torch.optim.Adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    amsgrad: bool = False


@dataclass
class SGDSchema:
    """torch.optim.SGD arguments."""

    _target_: str = "torch.optim.SGD"
    lr: float = 5e-2
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    dampening: float = 0.0


def register() -> None:
    """Put the schemas in the ConfigStore under the `schema` group."""
    store = ConfigStore.instance()
    store.store(group="schema", name="trainer", node=trainer_schema())
    store.store(group="schema", name="data", node=DataSchema)
    store.store(group="schema", name="image_folder", node=ImageFolderSchema)
    store.store(group="schema", name="dataset", node=DatasetSchema)
    store.store(group="schema", name="model_multiclass", node=MulticlassSchema)
    store.store(group="schema", name="model_binary", node=BinarySchema)
    store.store(group="schema", name="model_multilabel", node=MultilabelSchema)
    store.store(group="schema", name="optimizer_adam", node=AdamSchema)
    store.store(group="schema", name="optimizer_sgd", node=SGDSchema)
