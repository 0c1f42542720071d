"""Typed schemas for the config groups a user sets, registered in Hydra's ConfigStore.

The YAML files in conf/ extend them (`- /schema/trainer@_here_` in their defaults), so Hydra
itself refuses a value of the wrong type with the key's full name, e.g. `trainer.max_epochs=abc`:
"Value 'abc' could not be converted to Integer, full_key: trainer.max_epochs".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore

# Optional[...] rather than `X | None`: OmegaConf reads these annotations at runtime.


@dataclass
class TrainerSchema:
    """Every lightning.Trainer argument, typed, but `logger` and `callbacks` (logitlab builds them
    from the logger and callbacks groups). A misspelt key is still refused; tests check this
    list against the installed Trainer's signature."""

    _target_: str = "lightning.pytorch.Trainer"
    accelerator: str = "cpu"
    strategy: Any = "auto"
    devices: Any = 1  # an int, "auto", or a list of device indices
    num_nodes: int = 1
    precision: Any = "32-true"
    fast_dev_run: Any = False  # bool or a number of batches
    max_epochs: Optional[int] = 30  # noqa: UP045
    min_epochs: Optional[int] = 1  # noqa: UP045
    max_steps: int = -1
    min_steps: Optional[int] = None  # noqa: UP045
    max_time: Any = None  # "DD:HH:MM:SS" or {days: ..., hours: ...}
    limit_train_batches: Any = None  # a fraction (float) or a number of batches (int)
    limit_val_batches: Any = None
    limit_test_batches: Any = None
    limit_predict_batches: Any = None
    overfit_batches: Any = 0.0
    val_check_interval: Any = None  # a fraction of an epoch (float) or a number of batches
    check_val_every_n_epoch: Optional[int] = 1  # noqa: UP045
    num_sanity_val_steps: Optional[int] = 2  # noqa: UP045
    log_every_n_steps: Optional[int] = 10  # noqa: UP045
    enable_checkpointing: Optional[bool] = None  # noqa: UP045
    enable_progress_bar: Optional[bool] = True  # noqa: UP045
    enable_model_summary: Optional[bool] = True  # noqa: UP045
    accumulate_grad_batches: int = 1
    gradient_clip_val: Optional[float] = None  # noqa: UP045
    gradient_clip_algorithm: Optional[str] = None  # noqa: UP045  "norm" (default) or "value"
    deterministic: Any = False  # True, False or "warn"
    benchmark: Optional[bool] = False  # noqa: UP045
    inference_mode: bool = True
    use_distributed_sampler: bool = False  # logitlab shards batches itself (EpochOrder)
    profiler: Optional[str] = None  # noqa: UP045
    detect_anomaly: bool = False
    barebones: bool = False
    plugins: Any = None  # a list of Lightning plugins, each a {_target_: ...} entry
    sync_batchnorm: bool = False
    reload_dataloaders_every_n_epochs: int = 0
    default_root_dir: Optional[str] = None  # noqa: UP045
    enable_autolog_hparams: bool = True
    model_registry: Optional[str] = None  # noqa: UP045


# Trainer arguments the schema leaves out on purpose: logitlab passes them itself.
TRAINER_GIVEN = ("logger", "callbacks")


@dataclass
class AugmentSchema:
    """Batch augmentation of training images (logitlab.data.augment.Augment)."""

    shift: int = 0
    flip: bool = False
    erase: float = 0.0


@dataclass
class DataSchema:
    """ClassificationDataModule arguments."""

    _target_: str = "logitlab.data.datamodule.ClassificationDataModule"
    source: str = "digits"
    num_features: Optional[int] = None  # noqa: UP045
    num_classes: Optional[int] = 10  # noqa: UP045  (null: counted from the data)
    batch_size: int = 64
    eval_batch_size: Optional[int] = None  # noqa: UP045
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    standardize: bool = True
    # class indices, or class names where the data has them
    positive_classes: list[Any] = field(default_factory=lambda: [1])
    keep_classes: Optional[list[Any]] = None  # noqa: UP045
    class_names: Optional[list[str]] = None  # noqa: UP045
    balance: Optional[str] = None  # noqa: UP045
    loader: str = "tensor"
    num_workers: int = 0
    seed: int = 0
    data_dir: str = "data"
    download: bool = False
    splits_file: Optional[str] = None  # noqa: UP045
    stats_file: Optional[str] = None  # noqa: UP045
    path: Optional[str] = None  # noqa: UP045  (data=csv, data=npz: the file)
    target: Any = None  # data=csv: the label column, by name or index
    source_kwargs: dict[str, Any] = field(default_factory=dict)
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
    """ImageFolderDataModule arguments: a folder of class subfolders of images."""

    _target_: str = "logitlab.data.images.ImageFolderDataModule"
    source: str = "image_folder"
    root: Optional[str] = None  # noqa: UP045
    image_size: Optional[list[int]] = None  # noqa: UP045  [height, width]; null: the images'
    channels: Optional[int] = None  # noqa: UP045  1 (grayscale) or 3 (RGB); null: the images'
    stats_samples: int = 10_000
    pin_memory: Optional[bool] = None  # noqa: UP045  null: on when training on a GPU
    transforms: ImageTransformsSchema = field(default_factory=ImageTransformsSchema)


@dataclass
class MulticlassSchema:
    """MulticlassClassifier arguments (the loss and metrics come from their own groups)."""

    _target_: str = "logitlab.models.heads.MulticlassClassifier"
    num_classes: Optional[int] = 10  # noqa: UP045  (from data.num_classes, counted if null)
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
    store.store(group="schema", name="trainer", node=TrainerSchema)
    store.store(group="schema", name="data", node=DataSchema)
    store.store(group="schema", name="image_folder", node=ImageFolderSchema)
    store.store(group="schema", name="model_multiclass", node=MulticlassSchema)
    store.store(group="schema", name="model_binary", node=BinarySchema)
    store.store(group="schema", name="optimizer_adam", node=AdamSchema)
    store.store(group="schema", name="optimizer_sgd", node=SGDSchema)
