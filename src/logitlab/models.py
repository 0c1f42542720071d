"""The two heads: a multiclass classifier (C logits) and a binary one (one logit), one MLP."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MaxMetric

from logitlab.errors import ConfigError, TrainingDiverged
from logitlab.metrics import LossAccuracy

LOSSES: dict[str, tuple[str, ...]] = {
    "multiclass": ("cross_entropy", "nll"),
    "binary": ("bce_with_logits", "bce"),
}
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
    "sigmoid": nn.Sigmoid,
}
DEFAULT_OPTIMIZER: dict[str, Any] = {"_target_": "torch.optim.Adam", "lr": 1e-3}


def loss_mismatch_message(loss: str, task: str) -> str:
    """The one line that explains why `loss` cannot train the `task` head, and what fits."""
    fits = " or ".join(f"loss={name}" for name in LOSSES[task])
    other = next((t for t, names in LOSSES.items() if loss in names), None)
    if other is None:
        return f"loss={loss} is not a known loss; model={task} takes {fits}"
    return (
        f"loss={loss} is a {other} loss and does not fit model={task}; use {fits}, or model={other}"
    )


def build_mlp(
    num_features: int,
    hidden_sizes: Sequence[int],
    num_outputs: int,
    activation: str = "relu",
    dropout: float = 0.0,
) -> nn.Sequential:
    """Linear → activation → dropout for each hidden size, then a linear layer to the logits."""
    if activation not in ACTIVATIONS:
        raise ConfigError(
            f"model.activation='{activation}' is not known; use one of {', '.join(ACTIVATIONS)}"
        )
    layers: list[nn.Module] = []
    width = num_features
    for hidden in hidden_sizes:
        layers += [nn.Linear(width, hidden), ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = hidden
    layers.append(nn.Linear(width, num_outputs))
    return nn.Sequential(*layers)


class ClassifierModule(L.LightningModule):
    """What both heads share: the network, the metrics, the optimizer and the step hooks."""

    task: ClassVar[str]

    def __init__(
        self,
        num_features: int,
        num_outputs: int,
        hidden_sizes: Sequence[int],
        activation: str,
        dropout: float,
        loss: str,
        optimizer: dict[str, Any] | None,
        scheduler: dict[str, Any] | None,
    ) -> None:
        super().__init__()
        if loss not in LOSSES[self.task]:
            raise ConfigError(loss_mismatch_message(loss, self.task))
        self.net = build_mlp(num_features, hidden_sizes, num_outputs, activation, dropout)
        # One metric object per stage: updated every step, computed and reset once per epoch.
        self.train_stats = LossAccuracy()
        self.val_stats = LossAccuracy()
        self.test_stats = LossAccuracy()
        self.val_acc_best = MaxMetric()
        # Kept in checkpoints, so a run resumed mid-epoch ends with the same epoch metrics.
        self.train_stats.persistent(True)
        self.val_acc_best.persistent(True)
        self.last_finite_loss: float | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw logits; the loss (or predict_step) turns them into probabilities."""
        return self.net(x)

    def compute_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The configured loss of a batch of logits against integer class targets."""
        raise NotImplementedError

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Class probabilities, one column per class."""
        raise NotImplementedError

    def predict_classes(self, logits: torch.Tensor) -> torch.Tensor:
        """The predicted class of each sample: the class of highest probability."""
        raise NotImplementedError

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

    def log_epoch(self, stage: str) -> torch.Tensor:
        """Compute, log and reset the stage's loss and accuracy; return the accuracy."""
        stats = self.stage_stats(stage)
        computed = stats.compute()  # synced across DDP ranks: every rank logs the same value
        stats.reset()
        self.log(f"{stage}/loss", computed["loss"], prog_bar=stage != "test", sync_dist=True)
        self.log(f"{stage}/acc", computed["acc"], prog_bar=stage == "val", sync_dist=True)
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
        self.last_finite_loss = value
        self.train_stats.update(loss, self.predict_classes(logits), targets)
        return loss

    def on_train_epoch_end(self) -> None:
        self.log_epoch("train")

    def validation_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        loss, logits, targets = self.model_step(batch)
        self.val_stats.update(loss, self.predict_classes(logits), targets)
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
        return logits

    def on_test_epoch_end(self) -> None:
        self.log_epoch("test")

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        """Class probabilities (softmax or sigmoid) and the predicted class of each sample."""
        x = batch[0] if isinstance(batch, list | tuple) else batch
        logits = self(x)
        return {"probs": self.probabilities(logits), "preds": self.predict_classes(logits)}

    def configure_optimizers(self) -> Any:
        from hydra.utils import instantiate

        optimizer = instantiate(
            self.hparams.optimizer or DEFAULT_OPTIMIZER, params=self.parameters()
        )
        if not self.hparams.scheduler:
            return optimizer
        scheduler = instantiate(self.hparams.scheduler, optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }


class MulticlassClassifier(ClassifierModule):
    """C raw logits per sample; softmax lives in the loss (cross_entropy) or log_softmax (nll)."""

    task = "multiclass"

    def __init__(
        self,
        num_features: int,
        num_classes: int,
        hidden_sizes: Sequence[int] = (64,),
        activation: str = "relu",
        dropout: float = 0.0,
        loss: str = "cross_entropy",
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
    ) -> None:
        self.num_classes = num_classes
        super().__init__(
            num_features, num_classes, hidden_sizes, activation, dropout, loss, optimizer, scheduler
        )
        self.save_hyperparameters(logger=False)  # the run logs its whole config instead

    def compute_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.hparams.loss == "nll":
            return F.nll_loss(F.log_softmax(logits, dim=-1), targets)
        return F.cross_entropy(logits, targets)

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

    def __init__(
        self,
        num_features: int,
        hidden_sizes: Sequence[int] = (64,),
        activation: str = "relu",
        dropout: float = 0.0,
        loss: str = "bce_with_logits",
        pos_weight: float | None = None,
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            num_features, 1, hidden_sizes, activation, dropout, loss, optimizer, scheduler
        )
        if pos_weight is not None and loss != "bce_with_logits":
            raise ConfigError(
                f"model.pos_weight needs loss=bce_with_logits (loss={loss} has no pos_weight); "
                "switch the loss or set model.pos_weight=null"
            )
        self.save_hyperparameters(logger=False)  # the run logs its whole config instead
        weight = torch.tensor(pos_weight if pos_weight is not None else 1.0)
        self.register_buffer("pos_weight", weight, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One logit per sample, shape (N,)."""
        return self.net(x).squeeze(-1)

    def compute_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        targets = targets.to(logits.dtype)
        if self.hparams.loss == "bce":
            # The notebook's form: probabilities first, then BCELoss.
            return F.binary_cross_entropy(torch.sigmoid(logits), targets)
        return F.binary_cross_entropy_with_logits(logits, targets, pos_weight=self.pos_weight)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        p1 = torch.sigmoid(logits.float())
        return torch.stack([1 - p1, p1], dim=-1)

    def predict_classes(self, logits: torch.Tensor) -> torch.Tensor:
        # sigmoid(z) > 0.5 exactly when z > 0: the probability threshold without the sigmoid.
        return (logits > 0).long()
