"""The two heads: a multiclass classifier (C logits) and a binary one (one logit), one MLP."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MaxMetric

from logitlab.errors import ConfigError, TrainingDiverged
from logitlab.metrics import LossAccuracy
from logitlab.run import log_to_loggers

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
    """What both heads share: the MLP, the metrics, the optimizer and the step hooks."""

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
        # torchmetrics: updated every step, computed, logged and reset once per epoch.
        self.train_stats, self.val_stats, self.test_stats = (LossAccuracy() for _ in range(3))
        self.val_acc_best = MaxMetric()
        self._stats = {"train": self.train_stats, "val": self.val_stats, "test": self.test_stats}
        self._last_finite_loss: float | None = None
        self._epoch_clock = (time.perf_counter(), 0)
        # Kept in checkpoints, so a run resumed mid-epoch ends with the same epoch metrics.
        for metric in (self.train_stats, self.val_acc_best):
            metric.persistent(True)

    @property
    def last_finite_loss(self) -> float | None:
        """The most recent finite training loss, for divergence reports."""
        return self._last_finite_loss

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
        """The predicted class of each sample: the argmax of its probabilities, not computed."""
        raise NotImplementedError

    def transfer_batch_to_device(
        self, batch: Any, device: torch.device, dataloader_idx: int
    ) -> Any:
        # Our batches are always (features, targets): two tensors, no collection walk needed.
        x, targets = batch
        return x.to(device, non_blocking=True), targets.to(device, non_blocking=True)

    def model_step(
        self, batch: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Loss, (detached) logits and targets of one batch; shared by train, val and test."""
        x, targets = batch
        logits = self(x)
        return self.compute_loss(logits, targets), logits.detach(), targets

    def _update(
        self, stage: str, loss: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor
    ) -> None:
        # update(), not forward(): no per-batch value is computed, nothing syncs until epoch end.
        self._stats[stage].update(loss, self.predict_classes(logits), targets)

    def _log_epoch(self, stage: str) -> torch.Tensor:
        """Compute, log and reset the stage's loss and accuracy; return the accuracy."""
        stats = self._stats[stage]
        computed = stats.compute()
        values = {f"{stage}/loss": computed["loss"], f"{stage}/acc": computed["acc"]}
        stats.reset()
        # compute() already synced the states across DDP ranks; every rank logs the same value.
        self.log(f"{stage}/loss", values[f"{stage}/loss"], prog_bar=stage != "test", sync_dist=True)
        self.log(f"{stage}/acc", values[f"{stage}/acc"], prog_bar=stage == "val", sync_dist=True)
        return values[f"{stage}/acc"]

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        loss, logits, targets = self.model_step(batch)
        # Stop here, before the optimizer applies NaN gradients. A Python float test: a tenth
        # of the cost of bool(torch.isfinite(loss)) on a CPU. On a GPU either is a host sync,
        # the one per step this template keeps, so that no NaN update is ever applied.
        value = loss.detach().item()
        if not math.isfinite(value):
            raise TrainingDiverged(
                self.global_step, self.current_epoch, f"the loss is {value}", self.last_finite_loss
            )
        self._last_finite_loss = value
        self._update("train", loss, logits, targets)
        return loss

    # The epoch's wall time, throughput and learning rate are reported here rather than by
    # callbacks: Lightning calls every hook of every callback at every training step, so each
    # callback costs ~10 us a step even when it only acts once an epoch.
    def on_train_epoch_start(self) -> None:
        self._epoch_clock = (time.perf_counter(), int(self.train_stats.count))
        optimizer = self.trainer.optimizers[0] if self.trainer.optimizers else None
        if optimizer is not None:  # named as Lightning's LearningRateMonitor names it
            name, groups = f"lr-{type(optimizer).__name__}", optimizer.param_groups
            log_to_loggers(
                self.trainer,
                {
                    name if len(groups) == 1 else f"{name}/pg{i + 1}": group["lr"]
                    for i, group in enumerate(groups)
                },
            )

    def on_train_epoch_end(self) -> None:
        # time/: the training epoch with its validation, and the samples of all DDP ranks per
        # second; an epoch resumed midway counts from the resume. Not results: TensorBoard only.
        started, samples_before = self._epoch_clock
        seconds = time.perf_counter() - started
        samples = (int(self.train_stats.count) - samples_before) * self.trainer.world_size
        log_to_loggers(
            self.trainer, {"time/epoch_s": seconds, "time/samples_per_s": samples / seconds}
        )
        self._log_epoch("train")

    def validation_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        loss, logits, targets = self.model_step(batch)
        self._update("val", loss, logits, targets)
        return logits  # for callbacks: calibration, confusion matrix, curves

    def on_validation_epoch_end(self) -> None:
        acc = self._log_epoch("val")
        if self.trainer.sanity_checking:
            return  # the sanity check's few batches must not count towards the best accuracy
        self.val_acc_best.update(acc)
        self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True, sync_dist=True)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, logits, targets = self.model_step(batch)
        self._update("test", loss, logits, targets)
        return logits

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        """Class probabilities (softmax or sigmoid) and the predicted class of each sample."""
        x = batch[0] if isinstance(batch, list | tuple) else batch
        logits = self(x)
        # the same rule as the metrics' predicted class (predict_classes), not a second argmax
        return {"probs": self.probabilities(logits), "preds": self.predict_classes(logits)}

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning sets _current_fx_name before and after every hook call, about 40 times a
        # training step, and nn.Module.__setattr__'s parameter/buffer/submodule checks make each
        # store cost ~1.3 us. These two only ever hold a hook name or a float (never a
        # parameter, buffer or module): store them plainly.
        if name in ("_current_fx_name", "_last_finite_loss"):
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        # Lightning calls this every step; with no trainer.gradient_clip_val it has nothing to do.
        if gradient_clip_val:
            super().configure_gradient_clipping(
                optimizer, gradient_clip_val, gradient_clip_algorithm
            )

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
        # softmax as max-shift, exp, normalise, in float32 at least (bf16 logits under autocast):
        # the same values as torch.softmax, which on a CPU is ~5x slower over a short last axis
        # (0.6 ms for 10,000 x 10, paid by every validation epoch's diagnostics).
        x = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
        e = (x - x.amax(dim=-1, keepdim=True)).exp_()
        return e.div_(e.sum(dim=-1, keepdim=True))

    def predict_classes(self, logits: torch.Tensor) -> torch.Tensor:
        # max().indices is argmax (the first of tied maxima) at half argmax's cost on a CPU.
        return logits.max(dim=-1).indices


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
        p1 = torch.sigmoid(logits)
        return torch.stack([1 - p1, p1], dim=-1)

    def predict_classes(self, logits: torch.Tensor) -> torch.Tensor:
        # sigmoid(z) > 0.5 exactly when z > 0: the probability threshold without the sigmoid.
        return (logits > 0).long()
