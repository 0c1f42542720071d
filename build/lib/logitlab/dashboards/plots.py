"""Matplotlib figures for TensorBoard's Images tab (Agg backend, imported only when drawn)."""

from __future__ import annotations

from typing import Any

import torch


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion(matrix: torch.Tensor, labels: list[str]) -> Any:
    """A heatmap of counts, true classes down, predicted classes across."""
    plt = _pyplot()
    n = len(labels)
    fig, ax = plt.subplots(figsize=(1.2 + 0.55 * n, 1.0 + 0.5 * n), dpi=100)
    ax.imshow(matrix.numpy(), cmap="Blues")
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    peak = float(matrix.max()) or 1.0
    for i in range(n):
        for j in range(n):
            value = int(matrix[i, j])
            color = "white" if value > peak / 2 else "black"
            ax.text(j, i, str(value), ha="center", va="center", fontsize=8, color=color)
    ax.set_title(f"confusion matrix ({int(matrix.sum())} samples)")
    fig.tight_layout()
    return fig


def confusion_markdown(matrix: torch.Tensor, labels: list[str]) -> str:
    """The same counts as a markdown table (rows: true class, columns: predicted)."""
    head = "| true \\ predicted | " + " | ".join(labels) + " |"
    rule = "|---" * (len(labels) + 1) + "|"
    rows = [
        f"| {label} | " + " | ".join(str(int(v)) for v in row) + " |"
        for label, row in zip(labels, matrix, strict=True)
    ]
    return "\n".join([head, rule, *rows])


def reliability(bins: tuple[torch.Tensor, torch.Tensor, torch.Tensor], ece: float) -> Any:
    """Accuracy against confidence per bin, with the diagonal of perfect calibration."""
    plt = _pyplot()
    _, accuracy, count = bins
    used = count > 0
    width = 1.0 / len(count)
    centers = (torch.arange(len(count)) + 0.5) * width
    fig, ax = plt.subplots(figsize=(4.2, 4.0), dpi=100)
    ax.bar(
        centers[used].numpy(),
        accuracy[used].numpy(),
        width=width * 0.9,
        alpha=0.8,
        label="accuracy",
    )
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"reliability (ECE {ece:.4f})")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def roc(fpr: torch.Tensor, tpr: torch.Tensor, auroc: float) -> Any:
    """The ROC curve of the binary head."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.0, 4.0), dpi=100)
    ax.plot(fpr.numpy(), tpr.numpy(), label=f"AUROC {auroc:.4f}")
    ax.plot([0, 1], [0, 1], "--", color="gray")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig
