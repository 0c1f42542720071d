"""The three heads: multiclass (C logits, softmax), binary (one logit, sigmoid) and multilabel
(K logits, one sigmoid per label).

A head owns what turns logits into a prediction (softmax or sigmoid), the loss and the metrics;
the network is a constructor argument built from `model/net` (see logitlab.models.nets), so the head
never knows which architecture it trains.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn
from torchmetrics import MaxMetric

from logitlab.config.rules import check_loss_fits
from logitlab.errors import ConfigError, TrainingDiverged
from logitlab.models.losses import build_criterion
from logitlab.models.metrics import LabelLossAccuracy, LossAccuracy, build_metric_collection
from logitlab.models.schedules import scheduler_config

DEFAULT_OPTIMIZER: dict[str, Any] = {"_target_": "torch.optim.Adam", "lr": 1e-3}
INPUTS = ("logits", "log_probs", "probs")
EXPLODED = 1e4  # a training loss this many times its first value (at least 1) has diverged


def hard_labels(targets: torch.Tensor, task: str) -> torch.Tensor:
    """The label of the larger share of a mixed target (data.augment.mixup, cutmix): what
    training accuracy counts; class indices (and multilabel 0/1 targets) pass through."""
    if task == "multilabel":
        return targets
    if task == "binary":
        return (targets >= 0.5).long() if targets.is_floating_point() else targets
    return targets.argmax(dim=1) if targets.ndim == 2 else targets


def sigmoid_inputs(logits: torch.Tensor, kind: str) -> torch.Tensor:
    """What a per-logit sigmoid loss takes: logits, log-sigmoids, or probabilities (the
    notebook's bce: probabilities first, then BCELoss)."""
    if kind == "log_probs":
        return F.logsigmoid(logits)
    return torch.sigmoid(logits) if kind == "probs" else logits


def chart_step(trainer: L.Trainer) -> int:
    """The x of epoch-level charts: the epoch, or the optimizer step when validation runs
    within epochs (trainer.val_check_interval other than 1.0)."""
    return trainer.current_epoch if trainer.val_check_interval == 1.0 else trainer.global_step


class ClassifierModule(L.LightningModule):
    """What the heads share: the network, the metrics, the optimizer and the step hooks."""

    task: ClassVar[str]
    default_loss: ClassVar[dict[str, Any]]

    def __init__(
        self,
        net: nn.Module,
        loss: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        loss = dict(loss or self.default_loss)
        check_loss_fits(loss, self.task, unnamed_head=self.task)
        if loss.get("input", "logits") not in INPUTS:
            raise ConfigError(f"loss.input={loss['input']} must be one of {', '.join(INPUTS)}")
        # Plain values only in the hyperparameters (checkpoints load with weights_only=True);
        # the network is rebuilt from the run's config.
        self.save_hyperparameters({"loss": loss, "metrics": metrics or {}}, logger=False)
        self.save_hyperparameters("optimizer", "scheduler", logger=False)
        self.net = net
        self.criterion = build_criterion(loss)
        # One metric object per stage: updated every step, computed and reset once per epoch.
        stats = LabelLossAccuracy if self.task == "multilabel" else LossAccuracy
        self.train_stats, self.val_stats, self.test_stats = stats(), stats(), stats()
        self.val_acc_best = MaxMetric()
        # Kept in checkpoints, so a run resumed mid-epoch ends with the same epoch metrics.
        self.train_stats.persistent(True)
        self.val_acc_best.persistent(True)
        # Further metrics from config, each fed probabilities or predicted classes.
        metrics = metrics or {}
        self.metric_inputs = {name: spec.get("input", "preds") for name, spec in metrics.items()}
        self.val_metrics = build_metric_collection(metrics)
        self.test_metrics = build_metric_collection(metrics)
        self.last_finite_loss: float | None = None
        self.first_loss: float | None = None  # of this fit: what an exploding loss is measured by

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw logits; the loss (or predict_step) turns them into probabilities."""
        return self.net(x)

    def loss_inputs(self, logits: torch.Tensor) -> torch.Tensor:
        """What the criterion takes: logits, log-probabilities or probabilities."""
        raise NotImplementedError

    def loss_targets(self, targets: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Targets in the form the criterion takes."""
        return targets

    def compute_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The configured loss of a batch of logits against integer class targets."""
        return self.criterion(self.loss_inputs(logits), self.loss_targets(targets, logits))

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Class probabilities, one column per class."""
        raise NotImplementedError

    def predict_classes(self, logits: torch.Tensor) -> torch.Tensor:
        """The predicted class of each sample: the class of highest probability."""
        raise NotImplementedError

    def metric_scores(self, logits: torch.Tensor) -> torch.Tensor:
        """What probability-based metrics take: (N, C) probabilities, or (N,) for binary."""
        return self.probabilities(logits)

    def model_step(
        self, batch: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Loss, (detached) logits and targets of one batch; shared by train, val and test."""
        x, targets = batch
        logits = self(x)
        return self.compute_loss(logits, targets), logits.detach(), targets

    def stage_stats(self, stage: str) -> LossAccuracy:
        """The loss/accuracy metric of `stage` (train, val or test)."""
        return {"train": self.train_stats, "val": self.val_stats, "test": self.test_stats}[stage]

    def update_metrics(self, stage: str, logits: torch.Tensor, targets: torch.Tensor) -> None:
        """Configured metrics of `stage` (val, test): probabilities or classes, as each needs."""
        collection = self.val_metrics if stage == "val" else self.test_metrics
        if not len(collection):
            return
        scores, classes = self.metric_scores(logits), self.predict_classes(logits)
        for name, metric in collection.items(keep_base=True):
            metric.update(scores if self.metric_inputs[name] == "probs" else classes, targets)

    def log_epoch(self, stage: str) -> torch.Tensor:
        """Compute, log and reset the stage's metrics; return the accuracy."""
        stats = self.stage_stats(stage)
        computed = stats.compute()  # synced across DDP ranks: every rank logs the same value
        stats.reset()
        if self.trainer.loggers:  # Lightning's "step" key: the x of this epoch's scalars
            self.log("step", float(chart_step(self.trainer)), sync_dist=True)
        self.log(f"{stage}/loss", computed["loss"], prog_bar=stage != "test", sync_dist=True)
        self.log(f"{stage}/acc", computed["acc"], prog_bar=stage == "val", sync_dist=True)
        if stage != "train" and len(collection := getattr(self, f"{stage}_metrics")):
            values = collection.compute()
            self.log_dict({f"{stage}/{k}": v for k, v in values.items()}, sync_dist=True)
            collection.reset()
        return computed["acc"]

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        loss, logits, targets = self.model_step(batch)
        # Stop before the optimizer applies NaN gradients: a diverged run keeps its last good
        # weights. On a GPU this is one host sync per step, the price of that guarantee.
        value = loss.detach().item()
        if not math.isfinite(value):
            raise TrainingDiverged(
                self.global_step, self.current_epoch, f"the loss is {value}", self.last_finite_loss
            )
        self.first_loss = value if self.first_loss is None else self.first_loss
        if value > EXPLODED * max(self.first_loss, 1.0):  # finite, but the weights have blown up
            raise TrainingDiverged(
                self.global_step,
                self.current_epoch,
                f"the loss is {value:.3g}, over {EXPLODED:g} times its first value "
                f"({self.first_loss:.3g})",
                self.last_finite_loss,
            )
        self.last_finite_loss = value
        hard = hard_labels(targets, self.task)  # mixed: the larger share's label
        self.train_stats.update(loss, self.predict_classes(logits), hard)
        return loss

    def on_train_epoch_end(self) -> None:
        self.log_epoch("train")

    def validation_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        loss, logits, targets = self.model_step(batch)
        self.val_stats.update(loss, self.predict_classes(logits), targets)
        self.update_metrics("val", logits, targets)
        return logits  # for callbacks: calibration, confusion matrix, curves

    def on_validation_epoch_end(self) -> None:
        acc = self.log_epoch("val")
        if self.trainer.sanity_checking:
            return  # the sanity check's few batches must not count towards the best accuracy
        self.val_acc_best.update(acc)
        self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True, sync_dist=True)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, logits, targets = self.model_step(batch)
        self.test_stats.update(loss, self.predict_classes(logits), targets)
        self.update_metrics("test", logits, targets)
        return logits

    def on_test_epoch_end(self) -> None:
        self.log_epoch("test")

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        """Class probabilities (softmax or sigmoid) and the predicted class of each sample."""
        x = batch[0] if isinstance(batch, list | tuple) else batch
        logits = self(x)
        return {"probs": self.probabilities(logits), "preds": self.predict_classes(logits)}

    def configure_optimizers(self) -> Any:
        optimizer = instantiate(
            self.hparams["optimizer"] or DEFAULT_OPTIMIZER, params=self.parameters()
        )
        if not self.hparams["scheduler"]:
            return optimizer
        schedule = scheduler_config(self.hparams["scheduler"], optimizer, self)
        return {"optimizer": optimizer, "lr_scheduler": schedule}


class MulticlassClassifier(ClassifierModule):
    """C raw logits per sample; softmax lives in the loss (cross_entropy) or log_softmax (nll)."""

    task = "multiclass"
    default_loss: ClassVar[dict[str, Any]] = {
        "name": "cross_entropy",
        "head": "multiclass",
        "input": "logits",
        "_target_": "torch.nn.CrossEntropyLoss",
    }

    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        loss: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
    ) -> None:
        self.num_classes = num_classes
        super().__init__(net, loss, metrics, optimizer, scheduler)
        self.save_hyperparameters("num_classes", logger=False)

    @staticmethod
    def num_outputs(num_classes: int) -> int:
        """The network's output width for `num_classes` classes: one logit per class."""
        return num_classes

    def loss_inputs(self, logits: torch.Tensor) -> torch.Tensor:
        kind = self.hparams["loss"].get("input", "logits")
        if kind == "log_probs":
            return F.log_softmax(logits, dim=-1)
        return torch.softmax(logits, dim=-1) if kind == "probs" else logits

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        # float32 at least: bf16 logits (mixed precision) would give coarse probabilities
        return torch.softmax(logits.float(), dim=-1)

    def predict_classes(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.argmax(dim=-1)


class BinaryClassifier(ClassifierModule):
    """One logit per sample.

    The net returns the logit, not sigmoid(logit): BCEWithLogitsLoss folds the sigmoid into a
    log-sum-exp that stays finite for any logit, where BCELoss on probabilities saturates.
    """

    task = "binary"
    num_classes = 2
    default_loss: ClassVar[dict[str, Any]] = {
        "name": "bce_with_logits",
        "head": "binary",
        "input": "logits",
        "_target_": "torch.nn.BCEWithLogitsLoss",
    }

    @staticmethod
    def num_outputs(num_classes: int) -> int:
        """One logit, whatever the number of classes (2)."""
        return 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One logit per sample, shape (N,)."""
        return self.net(x).squeeze(-1)

    def loss_inputs(self, logits: torch.Tensor) -> torch.Tensor:
        return sigmoid_inputs(logits, self.hparams["loss"].get("input", "logits"))

    def loss_targets(self, targets: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return targets.to(logits.dtype)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        p1 = torch.sigmoid(logits.float())
        return torch.stack([1 - p1, p1], dim=-1)

    def metric_scores(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits.float())  # binary torchmetrics take P(class 1)

    def predict_classes(self, logits: torch.Tensor) -> torch.Tensor:
        # sigmoid(z) > 0.5 exactly when z > 0: the probability threshold without the sigmoid.
        return (logits > 0).long()


class MultilabelClassifier(ClassifierModule):
    """K raw logits per sample, one per label: a sample may carry any number of the labels.

    Each logit is its own yes/no (sigmoid), trained by a per-label loss (BCEWithLogitsLoss,
    `pos_weight` one per label, or the focal loss) against the sample's 0/1 target row; a label
    is predicted where its probability exceeds 0.5 (calibrate fits a threshold per label).
    """

    task = "multilabel"
    default_loss: ClassVar[dict[str, Any]] = {
        "name": "bce_with_logits",
        "head": "binary",
        "input": "logits",
        "_target_": "torch.nn.BCEWithLogitsLoss",
    }

    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        loss: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
    ) -> None:
        self.num_classes = num_classes  # the label count K
        super().__init__(net, loss, metrics, optimizer, scheduler)
        self.save_hyperparameters("num_classes", logger=False)

    @staticmethod
    def num_outputs(num_classes: int) -> int:
        """One logit per label."""
        return num_classes

    def loss_inputs(self, logits: torch.Tensor) -> torch.Tensor:
        return sigmoid_inputs(logits, self.hparams["loss"].get("input", "logits"))

    def loss_targets(self, targets: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return targets.to(logits.dtype)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """P(label) for each label, (N, K): the rows need not sum to 1."""
        return torch.sigmoid(logits.float())

    def predict_classes(self, logits: torch.Tensor) -> torch.Tensor:
        """0/1 per label: probability above 0.5, i.e. logit above 0."""
        return (logits > 0).long()
