"""The task view: the dataset's classes as the head sees them (all of them, or one-vs-rest)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from logitlab.errors import ConfigError

log = logging.getLogger(__name__)

Parts = dict[str, tuple[torch.Tensor, torch.Tensor]]


class TaskView:
    """`multiclass` keeps labels 0..C-1; `binary` maps `positive_classes` to 1 and every other
    class to 0, after dropping the classes outside `keep_classes` (e.g. 3-vs-8) when it is set.
    Classes may be given by index or, where the data names them, by name."""

    def __init__(
        self,
        task: str,
        positive_classes: Sequence[int | str] | None = None,
        keep_classes: Sequence[int | str] | None = None,
    ) -> None:
        self.task = task
        self.positive_classes: list = list(positive_classes or [])
        self.keep_classes: list | None = list(keep_classes) if keep_classes else None

    def num_classes(self, dataset_classes: int) -> int:
        """Classes the model predicts: the dataset's for multiclass, 2 for the binary view."""
        return 2 if self.task == "binary" else dataset_classes

    def label_names(self, class_names: list[str]) -> list[str]:
        """A readable name for each class of the view."""
        if self.task != "binary":
            return class_names
        positive = ",".join(
            class_names[c] if isinstance(c, int) and c < len(class_names) else str(c)
            for c in self.positive_classes
        )
        return [f"not {positive}", positive]

    def resolve(self, class_names: list[str], dataset: str) -> None:
        """positive_classes / keep_classes given by class name become class indices."""
        for key in ("positive_classes", "keep_classes"):
            resolved = []
            for c in getattr(self, key) or []:
                if isinstance(c, str) and c in class_names:
                    resolved.append(class_names.index(c))
                elif isinstance(c, str) and not c.lstrip("-").isdigit():
                    raise ConfigError(
                        f"data.{key} names class '{c}', which data={dataset} does not have "
                        f"(its classes are {', '.join(class_names)}); use one of them or its index"
                    )
                else:
                    resolved.append(int(c))
            if getattr(self, key):
                setattr(self, key, resolved)

    def apply(self, parts: Parts, dataset: str) -> Parts:
        """Each part's (features, labels) in the view's classes."""
        if self.task != "binary":
            return parts
        present = set(torch.cat([y for _, y in parts.values()]).unique().tolist())
        for key, wanted in (
            ("positive_classes", self.positive_classes),
            ("keep_classes", self.keep_classes or []),
        ):
            missing = sorted(set(wanted) - present)
            if missing:
                raise ConfigError(
                    f"data.{key} has {missing}, absent from dataset '{dataset}' "
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
                keep = self.kept(y)
                x, y = x[keep], y[keep]
            viewed[part] = (x, torch.isin(y, positive).long())
        return viewed

    def kept(self, y: torch.Tensor) -> torch.Tensor:
        """Which samples of labels `y` the view keeps (all, unless keep_classes is set)."""
        if self.task != "binary" or not self.keep_classes:
            return torch.ones(len(y), dtype=torch.bool)
        return torch.isin(y, torch.tensor(self.keep_classes))


class ClassNames:
    """The class count and names a DataModule gives the head (it sets `view`, `class_names`
    and `dataset_num_classes`)."""

    view: TaskView
    class_names: list[str] | None
    dataset_num_classes: int | None

    @property
    def num_classes(self) -> int:
        """Classes the model predicts: the dataset's for multiclass, 2 for the binary view."""
        return self.view.num_classes(int(self.dataset_num_classes or 0))

    def dataset_class_names(self) -> list[str]:
        """The dataset's class names (its own, data.class_names, or the class indices)."""
        return self.class_names or [str(c) for c in range(self.dataset_num_classes or 0)]

    def label_names(self) -> list[str]:
        """A readable name for each class of the task view."""
        return self.view.label_names(self.dataset_class_names())


def pos_weight(train_counts: list[int]) -> float:
    """data.balance=pos_weight: the training split's negatives / positives."""
    weight = train_counts[0] / train_counts[1]
    log.info("data.balance=pos_weight: pos_weight=%.4f (train negatives/positives)", weight)
    return weight


def label_pos_weights(train_counts: list[int], samples: int) -> list[float]:
    """data.balance=pos_weight for the multilabel head: negatives / positives of each label."""
    weights = [(samples - c) / c for c in train_counts]
    log.info("data.balance=pos_weight: pos_weight=%s (per label)", [round(w, 4) for w in weights])
    return weights


def check_label_columns(
    train_counts: list[int], samples: int, names: list[str], dataset: str
) -> None:
    """Refuse a training split in which a label is never present, or always."""
    for name, count in zip(names, train_counts, strict=True):
        if count in (0, samples):
            state = "absent from" if count == 0 else "present in"
            raise ConfigError(
                f"data={dataset}: label '{name}' is {state} every training sample; a label "
                "must be both present and absent to be learnt (drop it, or check the labels)"
            )


def class_weights(train_counts: list[int]) -> list[float]:
    """data.balance=class_weight: n / (C * n_c) per class, 1 for every class when balanced."""
    weights = [sum(train_counts) / (len(train_counts) * max(c, 1)) for c in train_counts]
    log.info("data.balance=class_weight: %s", [round(w, 4) for w in weights])
    return weights


def check_two_classes(train_counts: list[int], names: list[str], dataset: str) -> None:
    """Refuse a training split that holds a single class of the view."""
    if sum(c > 0 for c in train_counts) < 2:
        raise ConfigError(
            f"data={dataset}: the training split holds one class only "
            f"({names[train_counts.index(max(train_counts))]}); a classifier needs two or more "
            "(check the labels, positive_classes, keep_classes)"
        )


def check_training_labels(
    task: str, train: list[int], samples: int, names: list[str], dataset: str
) -> None:
    """Two classes in the training split; for the multilabel head, every label both present
    and absent."""
    if task == "multilabel":
        check_label_columns(train, samples, names, dataset)
    else:
        check_two_classes(train, names, dataset)


def balance_weights(
    balance: str | None, task: str, train: list[int], samples: int
) -> tuple[float | list[float] | None, list[float] | None]:
    """(pos_weight, class weights) that data.balance asks for, from the training counts."""
    if balance == "pos_weight":
        return (
            label_pos_weights(train, samples) if task == "multilabel" else pos_weight(train)
        ), None
    return None, (class_weights(train) if balance == "class_weight" else None)
