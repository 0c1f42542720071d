"""Your own LightningDataModule (`data=datamodule`, `data.datamodule: {_target_: ...}`), wrapped
so that the heads and the lifecycle (eval, predict, calibrate, resume) find what they need.

What it must provide: `train_dataloader()` and `val_dataloader()` (`test_dataloader()` for the
test and for predict) yielding `(x, y)` batches with `y` class indices, and its classes as
`classes` (a list of names) or `num_classes` (a count). The sample shape is read from the first
training batch. Its own hooks (prepare_data, setup, batch transfer, state_dict) are called as
Lightning would call them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import lightning as L
import torch

from logitlab.data.augment import Augment
from logitlab.data.checks import new_samples
from logitlab.data.task import ClassNames, TaskView
from logitlab.errors import ConfigError

SPLITS = ("train", "val", "test")


class OwnDataModule(ClassNames, L.LightningDataModule):
    """A user's LightningDataModule seen as logitlab's own: classes, sample shape, the task's
    view of the labels (binary: `positive_classes` become 1), batch augmentation."""

    def __init__(
        self,
        datamodule: Any,
        task: str,
        class_names: Sequence[str] | None = None,
        positive_classes: Sequence[int | str] | None = None,
        keep_classes: Sequence[int | str] | None = None,
        balance: str | None = None,
        seed: int = 0,
        augment: dict[str, Any] | None = None,
        folds: int | None = None,
        **_: Any,  # the settings of logitlab's own data (splits_file, stats_file, ...): unused
    ) -> None:
        super().__init__()
        self.source, self.task, self.seed = "datamodule", task, seed
        for key, value in (("keep_classes", keep_classes), ("balance", balance), ("folds", folds)):
            if value:
                raise ConfigError(
                    f"data.{key} needs logitlab's own data; with data=datamodule, filter, weigh "
                    "or fold the data in your DataModule (set it to null)"
                )
        self.spec = dict(datamodule) if isinstance(datamodule, Mapping) else datamodule
        self.inner = build_datamodule(self.spec)
        self.view = TaskView(task, positive_classes, None)
        self.augment = Augment(**(augment or {}))
        self.class_names = list(class_names) if class_names else None
        self.dataset_num_classes: int | None = None
        self.input_shape: tuple[int, ...] = ()
        self.feature_names: list[str] | None = None
        self.source_info: dict[str, Any] = {"datamodule": str(self.spec)}
        self.stats = None
        self.pos_weight: float | None = None
        self.class_weight: list[float] | None = None
        self.balance = None
        self.split_index: dict[str, Any] = {}
        self.fingerprint: dict[str, Any] = {}

    def prepare_data(self) -> None:
        self.inner.prepare_data()

    def setup(self, stage: str | None = None) -> None:
        """The DataModule's own setup, then its classes and the shape of its first batch."""
        self.inner.trainer = self.trainer
        self.inner.setup(stage or "fit")
        if self.input_shape:
            return
        classes = getattr(self.inner, "classes", None)
        count = getattr(self.inner, "num_classes", None)
        if self.class_names is None and classes is not None:
            self.class_names = [str(c) for c in classes]
        if self.class_names is None and not isinstance(count, int):
            raise ConfigError(
                f"data.datamodule: {type(self.inner).__name__} names no classes; give it a "
                "`classes` list of class names or a `num_classes` count (or set data.class_names)"
            )
        self.dataset_num_classes = len(self.class_names) if self.class_names else int(count)  # type: ignore[arg-type]
        self.view.resolve(self.dataset_class_names(), self.source)
        x, _ = first_batch(self.inner, "train")
        self.input_shape = tuple(x.shape[1:])
        self.augment.check_fits(self.input_shape, self.source)
        sizes = {s: size(self.inner, s) for s in SPLITS}
        content = hashlib.blake2b(str(self.spec).encode(), digest_size=16).hexdigest()
        self.fingerprint = {
            "samples": sizes,
            "class_names": self.dataset_class_names(),
            "label_counts": None,  # not counted: that would read every batch once more
            "content": f"blake2b:{content}",
        }

    def teardown(self, stage: str | None = None) -> None:
        self.inner.teardown(stage or "fit")

    def train_dataloader(self) -> Any:
        return self.inner.train_dataloader()

    def val_dataloader(self) -> Any:
        return self.inner.val_dataloader()

    def test_dataloader(self) -> Any:
        return self.inner.test_dataloader()

    def predict_dataloader(self) -> Any:
        return self.inner.test_dataloader()

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.inner.load_state_dict(state_dict)

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        return self.inner.on_before_batch_transfer(batch, dataloader_idx)

    def transfer_batch_to_device(
        self, batch: Any, device: torch.device, dataloader_idx: int
    ) -> Any:
        return self.inner.transfer_batch_to_device(batch, device, dataloader_idx)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """The DataModule's own hook, then the task's view of the labels and data.augment."""
        x, y = pair(self.inner.on_after_batch_transfer(batch, dataloader_idx))
        return self.augment.training_batch(
            x, self.viewed(y), self.trainer, self.num_classes, self.task, self.seed
        )

    def viewed(self, y: torch.Tensor) -> torch.Tensor:
        """Labels in the task's view: binary maps positive_classes to 1, the rest to 0."""
        if self.task != "binary":
            return y
        return torch.isin(y, torch.tensor(self.view.positive_classes, device=y.device)).long()

    def run_data(self) -> dict[str, Any]:
        """What data.json records: classes, shape, the DataModule as configured."""
        return {
            "source": self.source,
            "task": self.task,
            "class_names": self.dataset_class_names(),
            "label_names": self.label_names(),
            "input_shape": list(self.input_shape),
            "mean": None,
            "std": None,
            **self.source_info,
            "fingerprint": self.fingerprint,
        }

    def sample_batches(self, split: str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """A split's batches in the DataModule's order, labels in the task's view (predict)."""
        for batch in getattr(self.inner, f"{split}_dataloader")():
            x, y = pair(batch)
            yield x, self.viewed(y)

    def sample_rows(self, split: str) -> list[int]:
        """Rows in the order of the DataModule's `<split>_dataloader`: its dataset's when the
        loader does not shuffle (as test loaders do not)."""
        return list(range(size(self.inner, split) or 0))

    def sample_names(self, split: str) -> list[str] | None:
        return None

    def transform(self, features: Any, name: str = "input") -> torch.Tensor:
        """New samples, shaped as the DataModule's (it prepares its own; nothing is applied)."""
        return new_samples(features, self.input_shape, self.source, name)


def build_datamodule(spec: Any) -> L.LightningDataModule:
    """The user's DataModule from its `_target_` node, refused in one line if it is none."""
    from logitlab.config.instantiate import build_target

    target = spec.get("_target_") if isinstance(spec, Mapping) else None
    if target is None:
        raise ConfigError(
            "data=datamodule needs data.datamodule={_target_: your.DataModule, ...}; e.g. "
            "'data.datamodule={_target_: my_data.DigitsDataModule}'"
        )
    built = build_target(spec, "data.datamodule")
    if not isinstance(built, L.LightningDataModule):
        raise ConfigError(
            f"data.datamodule._target_={target} built a {type(built).__name__}, not a "
            "lightning.pytorch.LightningDataModule; give a DataModule class"
        )
    return built


def pair(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch as (x, y) tensors, or a one-line refusal."""
    if not isinstance(batch, tuple | list) or len(batch) != 2:
        raise ConfigError(
            f"data.datamodule: a batch is a {type(batch).__name__}, not a pair (x, y); make its "
            "loaders yield (inputs, class indices)"
        )
    x, y = batch
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor) or y.ndim != 1:
        raise ConfigError(
            "data.datamodule: a batch must be (x, y) tensors with y of shape (batch,), one class "
            "index per sample"
        )
    return x, y


def first_batch(inner: L.LightningDataModule, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The first batch of a split's loader."""
    try:
        batch = next(iter(getattr(inner, f"{split}_dataloader")()))
    except StopIteration:
        raise ConfigError(f"data.datamodule: its {split}_dataloader() is empty") from None
    return pair(batch)


def size(inner: L.LightningDataModule, split: str) -> int | None:
    """How many samples a split's loader reads (its dataset's length), where it says."""
    try:
        loader = getattr(inner, f"{split}_dataloader")()
        return len(loader.dataset)
    except Exception:  # no such loader, or a dataset without a length
        return None
