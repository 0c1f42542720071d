"""The multilabel head's views: its torchmetrics, the per-label table and reliability grid.

Every figure counts label decisions (a sample-label pair is one yes/no at probability 0.5):
`ece` and the pooled reliability diagram bin P(label) against the fraction present, as
torchmetrics' BinaryCalibrationError does for one label; `f1_micro`, `f1_macro`, `map` (mean
average precision over labels), `subset_acc` (every label of a sample right: torchmetrics'
MultilabelExactMatch) and `hamming` (the fraction of wrong decisions) are torchmetrics'
multilabel metrics.
"""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    BinaryCalibrationError,
    MultilabelAveragePrecision,
    MultilabelExactMatch,
    MultilabelF1Score,
    MultilabelHammingDistance,
    MultilabelPrecision,
    MultilabelRecall,
)

from logitlab.models.metrics import ReliabilityBins

SCALARS = ("ece", "f1_micro", "f1_macro", "map", "subset_acc", "hamming")
POOLED = ("ece",)  # updated with the flattened label decisions


def multilabel_metrics(labels: int, n_bins: int) -> dict[str, Metric | MetricCollection]:
    """The stage's metrics: the scalars, then the per-label columns of the table."""
    k: dict[str, Any] = {"num_labels": labels, "validate_args": False}
    return {
        "ece": BinaryCalibrationError(n_bins=n_bins, validate_args=False),
        "f1_micro": MultilabelF1Score(**k, average="micro"),
        "f1_macro": MultilabelF1Score(**k, average="macro"),
        "map": MultilabelAveragePrecision(**k, average="macro"),
        "subset_acc": MultilabelExactMatch(**k),
        "hamming": MultilabelHammingDistance(**k, average="micro"),
        "label_precision": MultilabelPrecision(**k, average=None),
        "label_recall": MultilabelRecall(**k, average=None),
        "label_f1": MultilabelF1Score(**k, average=None),
        "label_ap": MultilabelAveragePrecision(**k, average=None),
    }


def update(metrics: Any, probs: torch.Tensor, targets: torch.Tensor) -> None:
    """Feed one batch: (N, K) probabilities and 0/1 targets."""
    for name, metric in metrics.items(keep_base=True):
        if name in POOLED:
            metric.update(probs.reshape(-1), targets.reshape(-1))
        else:
            metric.update(probs, targets)


class LabelBins:
    """One ReliabilityBins per label: the per-label reliability diagrams."""

    def __init__(self, labels: int, n_bins: int, device: torch.device) -> None:
        self.bins = [ReliabilityBins(n_bins=n_bins).to(device) for _ in range(labels)]

    def update(self, probs: torch.Tensor, targets: torch.Tensor) -> None:
        for k, bins in enumerate(self.bins):
            bins.update(probs[:, k], targets[:, k])

    def compute(self) -> list[dict[str, torch.Tensor]]:
        return [bins.compute() for bins in self.bins]

    def reset(self) -> None:
        for bins in self.bins:
            bins.reset()


def labels_markdown(values: dict[str, torch.Tensor], names: list[str]) -> str:
    """Per label: precision, recall, F1 and average precision, as a markdown table."""
    head = "| label | precision | recall | F1 | AP |"
    rows = [
        f"| {name} | "
        + " | ".join(
            f"{float(values[key][k]):.4f}"
            for key in ("label_precision", "label_recall", "label_f1", "label_ap")
        )
        + " |"
        for k, name in enumerate(names)
    ]
    return "\n".join([head, "|---|---|---|---|---|", *rows])
