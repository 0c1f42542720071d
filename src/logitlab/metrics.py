"""The per-step metric of each stage: sample-weighted mean loss and accuracy, in one torchmetric."""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import Metric


class LossAccuracy(Metric):
    """Mean loss (weighted by batch size) and accuracy of a stage, computed once per epoch.

    It gives what MeanMetric(weight=batch size) and top-1 Accuracy give (tests/test_models.py
    checks it against both) with three in-place additions per update. The pair costs ~250 us a
    training step between the matmuls of a small model on a CPU: argument and NaN checks at
    every update, and MeanMetric's NaN check is a host sync per step on a GPU (its
    nan_strategy="disable" avoids that but drops the weights, torchmetrics#3434). Training stops
    on a non-finite loss before it reaches this metric; a NaN validation loss shows as NaN.
    States are sums: DDP sync sums them, and checkpoints carry them.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("loss_sum", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("correct", torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, loss: torch.Tensor, preds: torch.Tensor, targets: torch.Tensor) -> None:
        """Add one batch: its mean loss, predicted classes and true classes."""
        n = len(targets)
        self.loss_sum.add_(loss.detach(), alpha=n)
        self.correct.add_((preds == targets).sum())
        self.count.add_(n)

    def compute(self) -> dict[str, torch.Tensor]:
        """{"loss": sample-weighted mean loss, "acc": fraction of correct predictions}."""
        count = self.count.clamp(min=1).to(self.loss_sum.dtype)
        return {"loss": self.loss_sum / count, "acc": self.correct / count}
