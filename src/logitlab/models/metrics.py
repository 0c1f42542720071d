"""logitlab's own torchmetrics: a stage's loss and accuracy, reliability-diagram bins, and the
risk-coverage curve."""

from __future__ import annotations

from typing import Any

import torch
from hydra.utils import instantiate
from torchmetrics import Metric, MetricCollection
from torchmetrics.utilities import dim_zero_cat

from logitlab.uncertainty.selective import risk_coverage


class LossAccuracy(Metric):
    """Mean loss (weighted by batch size) and accuracy of a stage, computed once per epoch.

    The values of MeanMetric(weight=batch size) and top-1 Accuracy (tests/test_models.py checks
    it against both), as one metric with three sums as its states: DDP sync sums them and
    checkpoints carry them. It takes the loss, the predicted classes and the targets, which a
    step already has, so no argument checks run per step. Training stops on a non-finite loss
    before it reaches this metric; a NaN validation loss shows as NaN.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = None

    loss_sum: torch.Tensor  # states (add_state)
    correct: torch.Tensor
    count: torch.Tensor

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("loss_sum", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("correct", torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, loss: torch.Tensor, preds: torch.Tensor, targets: torch.Tensor) -> None:
        """Add one batch: its mean loss, predicted classes and true classes."""
        n = len(targets)
        self.loss_sum.add_(loss.detach().float(), alpha=n)
        self.correct.add_((preds == targets).sum())
        self.count.add_(n)

    def compute(self) -> dict[str, torch.Tensor]:
        """{"loss": sample-weighted mean loss, "acc": fraction of correct predictions}."""
        count = self.count.clamp(min=1).to(self.loss_sum.dtype)
        return {"loss": self.loss_sum / count, "acc": self.correct / count}


class LabelLossAccuracy(LossAccuracy):
    """LossAccuracy of the multilabel head: the loss per sample, the accuracy per label decision
    (correct sample-label pairs over all of them, torchmetrics' micro MultilabelAccuracy)."""

    decisions: torch.Tensor  # state (add_state)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("decisions", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, loss: torch.Tensor, preds: torch.Tensor, targets: torch.Tensor) -> None:
        super().update(loss, preds, targets)
        self.decisions.add_(targets.numel())

    def compute(self) -> dict[str, torch.Tensor]:
        computed = super().compute()
        decisions = self.decisions.clamp(min=1).to(self.loss_sum.dtype)
        return {"loss": computed["loss"], "acc": self.correct / decisions}


class ReliabilityBins(Metric):
    """Per confidence bin: the mean confidence, the accuracy and the sample count.

    The data of a reliability diagram, binned as torchmetrics' calibration error bins it, so
    the ECE it implies equals MulticlassCalibrationError / BinaryCalibrationError
    (tests/test_dashboards.py checks it): `n_bins` equal-width bins of the top-class
    probability for (N, C) probabilities, or of the positive-class probability, against the
    fraction of positives, for (N,) binary scores.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = None

    confidence: torch.Tensor  # states (add_state)
    correct: torch.Tensor
    count: torch.Tensor

    def __init__(self, n_bins: int = 15, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n_bins = n_bins
        self.add_state("confidence", torch.zeros(n_bins, dtype=torch.float64), "sum")
        self.add_state("correct", torch.zeros(n_bins, dtype=torch.float64), "sum")
        self.add_state("count", torch.zeros(n_bins, dtype=torch.float64), "sum")

    def update(self, probs: torch.Tensor, targets: torch.Tensor) -> None:
        """Add a batch: class probabilities (N, C) or positive-class scores (N,), and targets."""
        if probs.ndim == 1:
            confidence, correct = probs.float(), targets.double()
        else:
            confidence, preds = probs.float().max(dim=-1)
            correct = (preds == targets).double()
        bins = torch.clamp((confidence * self.n_bins).long(), max=self.n_bins - 1)
        self.confidence.index_add_(0, bins, confidence.double())
        self.correct.index_add_(0, bins, correct)
        self.count.index_add_(0, bins, torch.ones_like(confidence, dtype=torch.float64))

    def compute(self) -> dict[str, torch.Tensor]:
        """{"confidence", "accuracy", "count"} per bin, and the expected calibration error."""
        count = self.count.clamp(min=1)
        confidence, accuracy = self.confidence / count, self.correct / count
        ece = (self.count / self.count.sum().clamp(min=1) * (accuracy - confidence).abs()).sum()
        return {
            "confidence": confidence.float(),
            "accuracy": accuracy.float(),
            "count": self.count.float(),
            "ece": ece.float(),
        }


class RiskCoverage(Metric):
    """The confidence (top-class probability) and correctness of every sample, gathered across
    DDP ranks: the risk-coverage curve and its area (logitlab.uncertainty.selective)."""

    full_state_update = False
    is_differentiable = False
    higher_is_better = False

    confidence: list[torch.Tensor]  # states (add_state)
    correct: list[torch.Tensor]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("confidence", [], dist_reduce_fx="cat")
        self.add_state("correct", [], dist_reduce_fx="cat")

    def update(self, probs: torch.Tensor, targets: torch.Tensor) -> None:
        """Add a batch: class probabilities (N, C), or P(positive) (N,) for binary, and targets."""
        if probs.ndim == 1:
            probs = torch.stack([1 - probs, probs], dim=-1)
        confidence, preds = probs.float().max(dim=-1)
        self.confidence.append(confidence)
        self.correct.append(preds == targets)

    def compute(self) -> dict[str, torch.Tensor]:
        """{"coverage", "risk"} along the curve and its area "aurc"."""
        # a list of batches, or one tensor once DDP has gathered the ranks' lists
        confidence = dim_zero_cat(self.confidence).cpu().numpy() if len(self.confidence) else None
        if confidence is None or not len(confidence):
            nan = torch.tensor(float("nan"))
            return {"coverage": torch.zeros(0), "risk": torch.zeros(0), "aurc": nan}
        coverage, risk = risk_coverage(confidence, dim_zero_cat(self.correct).cpu().numpy())
        return {
            "coverage": torch.from_numpy(coverage).float(),
            "risk": torch.from_numpy(risk).float(),
            "aurc": torch.tensor(float(risk.mean())),
        }


def build_metric_collection(metrics: dict[str, Any]) -> MetricCollection:
    """A MetricCollection of the configured torchmetrics, by name (`input` is logitlab's key:
    whether the metric takes probabilities or predicted classes)."""

    built = {
        name: instantiate({key: value for key, value in spec.items() if key != "input"})
        for name, spec in metrics.items()
    }
    return MetricCollection(built, compute_groups=False)
